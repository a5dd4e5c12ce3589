#!/bin/sh
# Write the Mosquitto password file and ACL.
#
# In the compose stack the one-shot service "mqtt-passwd" runs this script in the
# Mosquitto image before the broker starts; passwords come from .env. By hand:
#
#   MQTT_COLLECTOR_PASSWORD=... MQTT_SIMULATOR_PASSWORD=... \
#     MQTT_PASSWD_FILE=./passwd sh deploy/mosquitto/make-passwd.sh
#
# Accounts: "collector" and "simulator" from the environment, always. Devices: from
# MQTT_FLEET_DIR/passwd when `citytel devices credentials` wrote one there (devices gone
# from the registry go away); otherwise the device lines already in the file are kept
# (added with: mosquitto_passwd -b FILE DEVICE_ID PASSWORD).
# ACL (when MQTT_ACL_FILE is set): MQTT_FLEET_DIR/acl when present, else MQTT_DEFAULT_ACL.
# Needs mosquitto_passwd (package mosquitto-clients or mosquitto).
set -eu

file="${MQTT_PASSWD_FILE:-/mosquitto/auth/passwd}"
fleet="${MQTT_FLEET_DIR:-}"
: "${MQTT_COLLECTOR_PASSWORD:?set MQTT_COLLECTOR_PASSWORD}"
: "${MQTT_SIMULATOR_PASSWORD:?set MQTT_SIMULATOR_PASSWORD}"

umask 077
mkdir -p "$(dirname "$file")"
tmp="$file.new"
rm -f "$tmp"
touch "$tmp"
mosquitto_passwd -b "$tmp" collector "$MQTT_COLLECTOR_PASSWORD"
mosquitto_passwd -b "$tmp" simulator "$MQTT_SIMULATOR_PASSWORD"
devices="$file"
if [ -n "$fleet" ] && [ -f "$fleet/passwd" ]; then
    devices="$fleet/passwd"
fi
if [ -f "$devices" ]; then
    grep -v -E '^(collector|simulator):' "$devices" >> "$tmp" || true
fi
# The broker drops privileges to user "mosquitto"; it must own its files.
owner() {
    if id mosquitto >/dev/null 2>&1; then chown mosquitto:mosquitto "$1"; fi
}
owner "$tmp"
chmod 0600 "$tmp"
mv "$tmp" "$file"
echo "wrote $file (devices from $devices)"

if [ -n "${MQTT_ACL_FILE:-}" ]; then
    acl="${MQTT_DEFAULT_ACL:?set MQTT_DEFAULT_ACL}"
    if [ -n "$fleet" ] && [ -f "$fleet/acl" ]; then
        acl="$fleet/acl"
    fi
    cp "$acl" "$MQTT_ACL_FILE.new"
    owner "$MQTT_ACL_FILE.new"
    chmod 0600 "$MQTT_ACL_FILE.new"
    mv "$MQTT_ACL_FILE.new" "$MQTT_ACL_FILE"
    echo "wrote $MQTT_ACL_FILE from $acl"
fi
