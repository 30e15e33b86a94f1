from conveyor_common.metrics import BoundedLabel


def test_the_first_values_keep_their_names_and_later_ones_are_other() -> None:
    label = BoundedLabel(2, "(other)")
    assert [label(v) for v in ["a", "b", "a", "c", "b", "d"]] == [
        "a",
        "b",
        "a",
        "(other)",
        "b",
        "(other)",
    ]
