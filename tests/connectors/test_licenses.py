import pytest

from connectors.licenses import license_admitted, license_group, normalize_license


@pytest.mark.parametrize(
    ("code", "canonical", "group"),
    [
        ("CC BY", "CC BY", "commercial"),
        ("cc-by 4.0", "CC BY", "commercial"),
        ("CC0", "CC0", "commercial"),
        ("CC BY-SA", "CC BY-SA", "commercial"),
        ("CC BY-ND", "CC BY-ND", "commercial"),
        ("CC BY-NC", "CC BY-NC", "noncommercial"),
        ("cc by-nc-sa", "CC BY-NC-SA", "noncommercial"),
        ("CC BY-NC-ND 3.0", "CC BY-NC-ND", "noncommercial"),
        ("NO-CC CODE", "NO-CC CODE", "other"),
        (None, None, "other"),
        ("", None, "other"),
    ],
)
def test_licence_codes_and_groups(code, canonical, group):
    assert normalize_license(code) == canonical
    assert license_group(code) == group


def test_license_choices():
    assert license_admitted("CC BY", "commercial")
    assert not license_admitted("CC BY-NC", "commercial")
    assert license_admitted("CC BY-NC", "noncommercial")
    assert license_admitted("CC BY", "noncommercial")
    assert not license_admitted("NO-CC CODE", "noncommercial")
    assert license_admitted("NO-CC CODE", "all")
    with pytest.raises(ValueError):
        license_admitted("CC BY", "everything")
