"""Line protocol: escaping and value types, checked against exact strings."""

from __future__ import annotations

import pytest

from twin.recording.lineprotocol import to_line, to_lines
from twin.recording.schema import Point


def test_types_and_tag_order() -> None:
    point = Point(
        "bus",
        1_700_000_000_000_000_000,
        {"run": "r1", "element": "Bus 3"},
        {
            "vm_pu": 1.0,
            "n": 3,
            "ok": True,
            "off": False,
            "tiny": 1e-05,
            "big": 1e20,
            "neg": -0.25,
            "s": "hi",
        },
    )
    assert to_line(point) == (
        "bus,element=Bus\\ 3,run=r1 "
        'vm_pu=1.0,n=3i,ok=true,off=false,tiny=1e-05,big=1e+20,neg=-0.25,s="hi" '
        "1700000000000000000"
    )


def test_escaping() -> None:
    point = Point(
        "my meas,ure=x",
        5,
        {"tag key,=": "v a,l=ue", "element": "Bus \"3\""},
        {"field key,=x": 'say "hi" C:\\path\\', "multi\tline": 1.5},
    )
    assert to_line(point) == (
        'my\\ meas\\,ure=x,element=Bus\\ "3",tag\\ key\\,\\==v\\ a\\,l\\=ue '
        'field\\ key\\,\\=x="say \\"hi\\" C:\\\\path\\\\",multi\tline=1.5 5'
    )


def test_float_repr_round_trips() -> None:
    value = 0.1 + 0.2
    line = to_line(Point("m", 1, {}, {"x": value}))
    assert line == "m x=0.30000000000000004 1"
    assert float(line.split("=")[1].split(" ")[0]) == value


def test_empty_tag_values_and_fieldless_points_are_skipped() -> None:
    points = [
        Point("m", 1, {"a": "", "b": "x"}, {"f": 1}),
        Point("m", 2, {"b": "x"}, {}),
        Point("m", 3, {}, {"f": 2}),
    ]
    assert to_lines(points) == "m,b=x f=1i 1\nm f=2i 3"
    assert to_line(points[1]) == ""
    assert to_lines([]) == ""


def test_unicode_passes_through() -> None:
    assert to_line(Point("wind", 1, {"element": "Umspannwerk Süd"}, {"note": "Ω"})) == (
        'wind,element=Umspannwerk\\ Süd note="Ω" 1'
    )


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (Point("#m", 1, {}, {"f": 1.0}), "comment"),
        (Point("", 1, {}, {"f": 1.0}), "empty"),
        (Point("m", 1, {}, {"f": float("nan")}), "non-finite"),
        (Point("m", 1, {}, {"f": float("inf")}), "non-finite"),
        (Point("m", 1, {}, {"f": 2**63}), "64-bit"),
    ],
)
def test_unrepresentable_values_raise(point: Point, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_line(point)


@pytest.mark.parametrize(
    ("point", "line"),
    [
        (Point("m", 1, {"element": "a\nb\r"}, {"f": 1.0}), "m,element=a\u240ab\u240d f=1.0 1"),
        (Point("m", 1, {"element": "trailing\\"}, {"f": 1.0}), "m,element=trailing\uff3c f=1.0 1"),
        (Point("m", 1, {"element": "two\\\\"}, {"f": 1.0}), "m,element=two\uff3c\uff3c f=1.0 1"),
        (Point("m", 1, {"element": "a\\ b"}, {"f": 1.0}), "m,element=a\uff3c\\ b f=1.0 1"),
        (Point("m", 1, {"element": "a\\=b"}, {"f": 1.0}), "m,element=a\uff3c\\=b f=1.0 1"),
        (Point("m", 1, {"element": "C:\\grid\\4"}, {"f": 1.0}), "m,element=C:\\grid\\4 f=1.0 1"),
        (Point("m\\", 1, {"k\\": "v"}, {"f\\": 1.0}), "m\uff3c,k\uff3c=v f\uff3c=1.0 1"),
        (Point("m\\=", 1, {}, {"f": 1.0}), "m\\= f=1.0 1"),  # '=' is plain in a measurement
    ],
)
def test_names_influx_cannot_take_are_sanitised(point: Point, line: str) -> None:
    assert to_line(point) == line


def test_unsupported_type_raises() -> None:
    with pytest.raises(TypeError, match="unsupported type"):
        to_line(Point("m", 1, {}, {"f": [1, 2]}))  # type: ignore[dict-item]


def test_numpy_scalars_that_skipped_cleaning_still_serialise() -> None:
    np = pytest.importorskip("numpy")
    fields = {"a": np.float64(1.0), "b": np.int64(2), "c": np.bool_(True)}
    line = to_line(Point("m", 1, {}, fields))
    assert line == "m a=1.0,b=2i,c=true 1"


def test_table_points_clean_only_where_needed():
    from twin.recording.schema import table_points

    nan = float("nan")
    ok = table_points("bus", ["a", "b"], {"vm_pu": [1.0, 0.99], "closed": [True, False]}, "r", 5)
    assert [p.fields for p in ok] == [{"vm_pu": 1.0, "closed": True},
                                      {"vm_pu": 0.99, "closed": False}]
    assert type(ok[0].fields["closed"]) is bool and ok[1].tags == {"run": "r", "element": "b"}
    mixed = table_points("ev", ["a", "b"], {"soc_mean": [nan, 0.5], "p_mw": [0.0, 1.0]}, "r", 5)
    assert [p.fields for p in mixed] == [{"p_mw": 0.0}, {"soc_mean": 0.5, "p_mw": 1.0}]
