"""campaign.e164 must give exactly phonenumbers' verdicts, only faster."""

from __future__ import annotations

import re
import subprocess
import sys

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

import campaign.e164
from campaign.e164 import is_valid_e164, normalise

# Bounded so the file runs in seconds; no example database written into the tree.
BOUNDED = settings(max_examples=300, deadline=None, database=None)

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
NON_GEO_CODES = sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# Unassigned or spare codes, where parse() itself has to refuse the number.
UNKNOWN_CODES = [0, 28, 210, 292, 801, 999]
DEFAULT_REGIONS = [None, "US", "GB", "DE", "IT", "BR", "AR", "SM", "JP", "ZZ", "us", ""]


def reference_valid(address: str) -> bool:
    """The definition is_valid_e164 must meet."""
    try:
        number = phonenumbers.parse(address, None)
    except NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.format_number(number, PhoneNumberFormat.E164) == address
    )


def reference_normalise(raw: str, default_region: str | None = None) -> str | None:
    """The definition normalise must meet."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def example_numbers(region: str) -> list[phonenumbers.PhoneNumber]:
    """phonenumbers' example numbers of every type for a region ('001' + code: non-geographic)."""
    if region.startswith("001+"):
        found = [phonenumbers.example_number_for_non_geo_entity(int(region[4:]))]
    else:
        found = [phonenumbers.example_number_for_type(region, t) for t in PhoneNumberType.values()]
    return [number for number in found if number is not None]


EXAMPLE_REGIONS = REGIONS + [f"001+{code}" for code in NON_GEO_CODES]
EXAMPLES = sorted(
    {
        phonenumbers.format_number(number, PhoneNumberFormat.E164)
        for region in EXAMPLE_REGIONS
        for number in example_numbers(region)
    }
)


@pytest.mark.parametrize(
    "address",
    [
        "+12015550123",  # US
        "+19143188062",  # US
        "+15062345678",  # CA: NANP, not US
        "+16135550123",  # CA
        "+18762101234",  # JM: NANP, claimed by leading digits
        "+17875551234",  # PR
        "+447400123456",  # GB mobile
        "+441212345678",  # GB fixed line
        "+4915123456789",  # DE
        "+4930123456",  # DE, short
        "+33612345678",  # FR
        "+918123456789",  # IN
        "+5511961234567",  # BR
        "+390212345678",  # IT: the national number keeps its leading zero
        "+390669812345",  # VA shares +39 with IT
        "+61412345678",  # AU
        "+3780549886377",  # SM
        "+80012345678",  # international freephone, non-geographic
        "+8823421234",  # international networks, non-geographic
    ],
)
def test_known_valid_numbers(address: str) -> None:
    """Valid numbers across countries, NANP regions and non-geographic codes are accepted."""
    assert reference_valid(address)
    assert is_valid_e164(address)
    assert normalise(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        "+",
        "+1",
        "+12",
        "+120155501",  # US, too short
        "+120155501234",  # US, too long
        "+11015550123",  # NANP area codes do not start with 1
        "+4474001234567890123",  # longer than any national number
        "+1 2015550123",  # spaces
        "+1-201-555-0123",
        "12015550123",  # no '+'
        "0044 7400 123456",
        "+4407400123456",  # national prefix after the code: parse() drops it
        "++447400123456",
        "+447400123456 ",
        " +447400123456",
        "+\uff10\uff11\uff12",
        "+\uff11\uff12\uff10\uff11\uff15\uff15\uff15\uff10\uff11\uff12\uff13",  # fullwidth digits
        "+\u0661\u0662\u0660\u0661\u0665\u0665\u0665\u0660\u0661\u0662\u0663",  # Arabic-Indic
        "+12015550123x12",  # extension
        "tel:+12015550123",
        "+0123456789",  # country codes do not start with 0
        "+999123456789",  # unassigned code
        "+390212",  # IT, too short
        "+39021234567890",  # IT, too long
    ],
)
def test_known_rejections(address: str) -> None:
    """Non-canonical, malformed, too short and too long addresses are rejected, as by phonenumbers."""
    assert not reference_valid(address)
    assert not is_valid_e164(address)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (201) 555-0123", None, "+12015550123"),
        ("+1.201.555.0123", "GB", "+12015550123"),
        ("  +44 7400 123-456 ", None, "+447400123456"),
        ("+44 (0) 7400 123456", None, "+447400123456"),
        ("+4407400123456", None, "+447400123456"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("00 44 7400 123456", "DE", "+447400123456"),
        ("011 44 7400 123456", "US", "+447400123456"),
        ("07400 123456", "GB", "+447400123456"),
        ("06 1234 5678", "IT", "+390612345678"),
        ("+1 201 555 0123 ext. 7", None, "+12015550123"),
        ("Tel: +49 30 123456", None, "+4930123456"),
        ("(201) 555-0123", None, None),
        ("+1 201 555 012", None, None),
        ("+44 7400", None, None),
        ("not a number", "US", None),
        ("", "US", None),
        ("+" + "1" * 300, None, None),
    ],
)
def test_normalise_examples(raw: str, region: str | None, expected: str | None) -> None:
    """Common ways of writing numbers normalise to phonenumbers' E.164 form, or None."""
    assert reference_normalise(raw, region) == expected
    assert normalise(raw, region) == expected


@pytest.mark.parametrize("region", EXAMPLE_REGIONS)
def test_every_example_number(region: str) -> None:
    """Every example number of every region and type, in every format, gets phonenumbers' verdict."""
    numbers = example_numbers(region)
    written = [
        phonenumbers.format_number(number, style)
        for number in numbers
        for style in (
            PhoneNumberFormat.E164,
            PhoneNumberFormat.INTERNATIONAL,
            PhoneNumberFormat.RFC3966,
        )
    ]
    addresses = [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in numbers]
    assert [is_valid_e164(a) for a in addresses] == [reference_valid(a) for a in addresses]
    assert [normalise(w) for w in written] == [reference_normalise(w) for w in written]
    if not region.startswith("001+"):
        national = [phonenumbers.format_number(n, PhoneNumberFormat.NATIONAL) for n in numbers]
        got = [normalise(n, region) for n in national]
        assert got == [reference_normalise(n, region) for n in national]


@BOUNDED
@given(
    code=st.sampled_from(CALLING_CODES + UNKNOWN_CODES),
    national=st.text(alphabet="0123456789", max_size=20),
    region=st.sampled_from(DEFAULT_REGIONS),
)
def test_random_digits_after_plus(code: int, national: str, region: str | None) -> None:
    """For '+', a country code and random digits, both functions agree with phonenumbers."""
    address = f"+{code}{national}"
    assert is_valid_e164(address) == reference_valid(address)
    assert normalise(address, region) == reference_normalise(address, region)


@st.composite
def mutated_examples(draw: st.DrawFn) -> str:
    """An example number with one digit changed, added or removed (or left alone)."""
    digits = draw(st.sampled_from(EXAMPLES))[1:]
    where = draw(st.integers(min_value=0, max_value=len(digits)))
    digit = draw(st.sampled_from("0123456789"))
    edit = draw(st.sampled_from(["keep", "change", "add", "remove"]))
    if edit == "change":
        digits = digits[:where] + digit + digits[where + 1 :]
    elif edit == "add":
        digits = digits[:where] + digit + digits[where:]
    elif edit == "remove":
        digits = digits[:where] + digits[where + 1 :]
    return "+" + digits


@BOUNDED
@given(address=mutated_examples(), region=st.sampled_from(DEFAULT_REGIONS))
def test_mutated_example_numbers(address: str, region: str | None) -> None:
    """Near misses of real numbers get phonenumbers' verdict, in E.164 and typed with spaces."""
    assert is_valid_e164(address) == reference_valid(address)
    assert normalise(address, region) == reference_normalise(address, region)
    typed = f"{address[:3]} ({address[3:6]}) {address[6:9]}-{address[9:]}"
    assert normalise(typed, region) == reference_normalise(typed, region)


# Pieces of the things people (and broken exports) put in phone-number fields.
PHONEISH = st.lists(
    st.sampled_from(
        [
            *"0123456789+ ()-./x#;,*~\tTtEeLl:",
            *("\u00a0", "\u2013", "\uff0b", "\uff11", "\u0661"),
            *("00", "011", "ext", ";ext=", ";phone-context=", "tel:"),
        ]
    ),
    max_size=16,
).map("".join)


@BOUNDED
@given(
    raw=st.one_of(
        PHONEISH,
        st.builds(lambda a, b: a + b, st.sampled_from(EXAMPLES), PHONEISH),
        st.builds(lambda a, b: a + b, PHONEISH, st.sampled_from(EXAMPLES)),
        st.text(max_size=40),
    ),
    region=st.sampled_from(DEFAULT_REGIONS),
)
def test_random_text(raw: str, region: str | None) -> None:
    """On arbitrary text, normalise and is_valid_e164 agree with phonenumbers."""
    assert normalise(raw, region) == reference_normalise(raw, region)
    assert is_valid_e164(raw) == reference_valid(raw)


@pytest.mark.parametrize("code", CALLING_CODES)
def test_every_calling_code_compiles(code: int) -> None:
    """Every calling code's patterns compile, and none is left to phonenumbers wholesale."""
    country = campaign.e164._COUNTRIES[f"{code}00"[:3]]
    country.build()
    assert country.code == code
    assert not country.delegate
    lazy = [p for p in country.valid + country.unstripped if p is not None]
    assert all(re.compile(p.source) for p in lazy if isinstance(p, campaign.e164._LazyPattern))


def test_import_compiles_nothing() -> None:
    """Importing the module is cheap: country data is compiled on first use only."""
    script = "import campaign.e164 as m; print(sum(c.ready for c in set(m._COUNTRIES.values())))"
    out = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(914) 318-8062", "US", "+19143188062"),
        ("914-318-8062", "US", "+19143188062"),
        ("914.318.8062", "US", "+19143188062"),
        ("9143188062", "US", "+19143188062"),
        ("1 (914) 318-8062", "US", "+19143188062"),  # own calling code, no '+'
        ("19143188062", "US", "+19143188062"),
        ("914318806", "US", None),  # too short
        ("(114) 318-8062", "US", None),  # area codes do not start with 1
        ("011 44 7911 123456", "US", "+447911123456"),  # IDD: left to phonenumbers
        ("(613) 555-0123", "CA", "+16135550123"),
        ("(201) 555-0123", "CA", "+12015550123"),  # a US number dialled from CA
        ("07911 123456", "GB", "+447911123456"),
        ("07911-123-456", "GB", "+447911123456"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("44 7911 123456", "GB", "+447911123456"),
        ("7911 123456", "GB", "+447911123456"),  # without the national prefix
        ("0044 7911 123456", "GB", "+447911123456"),
        ("030 123456", "DE", "+4930123456"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("01.23.45.67.89", "FR", "+33123456789"),
        ("06 1234 5678", "IT", "+390612345678"),  # the leading zero stays
        ("02 1234 5678", "IT", "+390212345678"),
        ("312 345 6789", "IT", "+393123456789"),
        ("081234 56789", "IN", "+918123456789"),
        ("81234 56789", "IN", "+918123456789"),
        ("(11) 96123-4567", "BR", "+5511961234567"),
        ("0 (11) 96123-4567", "BR", "+5511961234567"),
        ("011 15 2345-6789", "AR", "+5491123456789"),  # national prefix transform
        ("8 (912) 345-67-89", "RU", "+79123456789"),
        ("06 20 123 4567", "HU", "+36201234567"),
        ("090-1234-5678", "JP", "+819012345678"),
        ("010-2000-0000", "KR", "+821020000000"),
        ("55 1234 5678", "MX", "+525512345678"),
        ("12", "US", None),
        ("(914) 318-8062", "us", None),  # parse() is case-sensitive about the region
        ("(914) 318-8062", "ZZ", None),
    ],
)
def test_normalise_national_examples(raw: str, region: str, expected: str | None) -> None:
    """National numbers with a default region normalise as phonenumbers does."""
    assert reference_normalise(raw, region) == expected
    assert normalise(raw, region) == expected


# Regions with plain, shared, transforming or carrier-code national prefixes.
NATIONAL_REGIONS = [
    *("US", "CA", "JM", "BS", "GB", "GG", "JE", "DE", "FR", "IT", "VA", "SM", "IN", "BR"),
    *("AR", "MX", "RU", "KZ", "HU", "KR", "JP", "AU", "CC", "CN", "CO", "ID", "NG", "BY"),
]
SEPARATORS = st.sampled_from(["", "", "", " ", "-", ".", "(", ")", " (", ") "])


@st.composite
def national_inputs(draw: st.DrawFn) -> tuple[str, str]:
    """A region and a national-looking digit string, often an example number of that region
    (sometimes with its calling code, a national prefix or one digit changed), with random
    separators between the digits."""
    region = draw(st.sampled_from(NATIONAL_REGIONS))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    code = str(metadata.country_code)
    numbers = example_numbers(region)
    if numbers and draw(st.booleans()):
        written = phonenumbers.format_number(
            draw(st.sampled_from(numbers)), PhoneNumberFormat.NATIONAL
        )
        digits = "".join(c for c in written if c.isdigit())
        where = draw(st.integers(min_value=0, max_value=len(digits)))
        digit = draw(st.sampled_from("0123456789"))
        edit = draw(st.sampled_from(["keep", "keep", "change", "add", "remove"]))
        if edit == "change":
            digits = digits[:where] + digit + digits[where + 1 :]
        elif edit == "add":
            digits = digits[:where] + digit + digits[where:]
        elif edit == "remove":
            digits = digits[:where] + digits[where + 1 :]
    else:
        digits = draw(st.text(alphabet="0123456789", max_size=16))
    prefix = draw(st.sampled_from(["", "", "0", "1", "8", "9", "06", "15", "00", code, code + "0"]))
    digits = prefix + digits
    text = draw(st.sampled_from(["", "("])) + "".join(c + draw(SEPARATORS) for c in digits)
    return text, region


@BOUNDED
@given(case=national_inputs())
def test_random_national_numbers(case: tuple[str, str]) -> None:
    """National-format input with a default region gets phonenumbers' verdict."""
    text, region = case
    assert normalise(text, region) == reference_normalise(text, region)
