"""The pilot cities: where they are and how they are divided."""

from __future__ import annotations

from dataclasses import dataclass

# All pilot cities keep China Standard Time (Asia/Shanghai, no daylight saving).
UTC_OFFSET_S = 8 * 3600


@dataclass(frozen=True, slots=True)
class City:
    """A city's centre, districts and main streets (for intersection names)."""

    name: str
    lat: float
    lon: float
    districts: tuple[str, ...]
    streets: tuple[str, ...]
    utc_offset_s: int = UTC_OFFSET_S
    pm25_base_ugm3: float = 45.0

    @property
    def timezone_name(self) -> str:
        return "Asia/Shanghai"


PILOT_CITIES: dict[str, City] = {
    "jinan": City(
        "jinan",
        36.65,
        117.00,
        ("lixia", "shizhong", "huaiyin", "tianqiao", "licheng", "changqing", "zhangqiu"),
        (
            "Jingshi Rd",
            "Lishan Rd",
            "Quancheng Rd",
            "Heping Rd",
            "Jiefang Rd",
            "Shunhua Rd",
            "Aoti Zhong Rd",
            "Luoyuan St",
            "Wenhua West Rd",
            "Shanda Rd",
            "Jingqi Rd",
            "Weishi Rd",
            "Erhuan East Rd",
            "Gongye South Rd",
            "Beiyuan Ave",
            "Jiyang Rd",
        ),
        pm25_base_ugm3=48.0,
    ),
    "qingdao": City(
        "qingdao",
        36.07,
        120.38,
        ("shinan", "shibei", "licang", "laoshan", "chengyang", "huangdao", "jimo"),
        (
            "Hong Kong Middle Rd",
            "Yan'an 3rd Rd",
            "Shandong Rd",
            "Liaoning Rd",
            "Nanjing Rd",
            "Haier Rd",
            "Shenzhen Rd",
            "Qingdao Ave",
            "Chongqing Rd",
            "Fuzhou Rd",
        ),
        pm25_base_ugm3=30.0,
    ),
    "jining": City(
        "jining",
        35.41,
        116.59,
        ("rencheng", "yanzhou", "qufu", "zoucheng"),
        ("Taibai Rd", "Hongxing Rd", "Gongye North Rd", "Jinyu Rd", "Wutaizha Rd", "Ji'an Rd"),
        pm25_base_ugm3=50.0,
    ),
    "yantai": City(
        "yantai",
        37.46,
        121.45,
        ("zhifu", "laishan", "fushan", "muping", "penglai"),
        ("Beima Rd", "Nandajie St", "Yingchun Ave", "Guanhai Rd", "Changjiang Rd", "Huanshan Rd"),
        pm25_base_ugm3=28.0,
    ),
}

_DEFAULT = PILOT_CITIES["jinan"]


def city_for(name: str) -> City:
    """The pilot city of that name; other names get Jinan's coordinates, generic districts."""
    city = PILOT_CITIES.get(name)
    if city is not None:
        return city
    return City(
        name,
        _DEFAULT.lat,
        _DEFAULT.lon,
        tuple(f"district-{i}" for i in range(1, 6)),
        tuple(f"Road {i}" for i in range(1, 13)),
    )
