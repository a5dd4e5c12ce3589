#!/bin/sh
# Write the Mosquitto password file for the service accounts.
#
# In the compose stack the one-shot service "mqtt-passwd" runs this script in the
# Mosquitto image before the broker starts; passwords come from .env. By hand:
#
#   MQTT_COLLECTOR_PASSWORD=... MQTT_SIMULATOR_PASSWORD=... \
#     MQTT_PASSWD_FILE=./passwd sh deploy/mosquitto/make-passwd.sh
#
# Needs mosquitto_passwd (package mosquitto-clients or mosquitto). Device accounts
# are added afterwards with: mosquitto_passwd -b FILE DEVICE_ID PASSWORD
set -eu

file="${MQTT_PASSWD_FILE:-/mosquitto/auth/passwd}"
: "${MQTT_COLLECTOR_PASSWORD:?set MQTT_COLLECTOR_PASSWORD}"
: "${MQTT_SIMULATOR_PASSWORD:?set MQTT_SIMULATOR_PASSWORD}"

umask 077
mkdir -p "$(dirname "$file")"
tmp="$file.new"
rm -f "$tmp"
touch "$tmp"
mosquitto_passwd -b "$tmp" collector "$MQTT_COLLECTOR_PASSWORD"
mosquitto_passwd -b "$tmp" simulator "$MQTT_SIMULATOR_PASSWORD"
# Keep device accounts added earlier to an existing file.
if [ -f "$file" ]; then
    grep -v -E '^(collector|simulator):' "$file" >> "$tmp" || true
fi
# The broker drops privileges to user "mosquitto"; it must own the file.
if id mosquitto >/dev/null 2>&1; then
    chown mosquitto:mosquitto "$tmp"
fi
chmod 0600 "$tmp"
mv "$tmp" "$file"
echo "wrote $file"
