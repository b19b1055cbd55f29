"""Phone-address validation and normalisation with phonenumbers' exact verdicts, fast.

Both the API emulator (up to ~200,000 recipient addresses a second on one core) and the
CSV reader (a million rows in well under ten seconds) have to decide whether an address is
a valid phone number.  ``phonenumbers.parse`` + ``is_valid_number`` costs ~60 µs an address,
a third of it spent by ``is_valid_number`` trying the ~25 NANP regions behind +1 one at a
time, which alone would use the whole budget.

So this module re-implements only the decision, for input that is already international
(``+`` and digits, optionally with spaces, dots, dashes and parentheses), from phonenumbers'
own metadata: per country calling code, read lazily on first use, it compiles one regular
expression per national-number length that says "matches the general description and at
least one number type that counts as valid"; for a calling code shared by several regions
that one expression also picks the region as ``_region_code_for_number_from_list`` does
(the first region, in phonenumbers' order, to claim the number by its leading digits or by
finding it valid) before judging it there.  It also repeats what ``parse`` does to an
international number after the country code: stripping a national prefix such as the
``0`` in ``+44 (0) 7911 123456``.  National input with a default region (``(914) 318-8062``
for US, ``07911 123456`` for GB: digits and the same separators) is read the same way
after repeating parse()'s national steps (_Region, _from_national): the region's own
calling code written without '+', and national prefix stripping with the region's own
rules; input starting like the region's international prefix goes to phonenumbers.
Everything else -- ``00`` / ``011`` forms, letters, extensions, RFC 3966, unknown country
codes, region codes parse() rejects -- is handed to phonenumbers itself, so the
verdicts are phonenumbers' by construction there and by replication here; the tests
compare the two on generated and mutated example numbers of every region.

The per-country data is bounded by the number of calling codes (215), and each pattern is
compiled the first time a number of its length is seen; nothing is cached per address.
"""

from __future__ import annotations

import re
from typing import Protocol

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberFormat,
)
from phonenumbers.phonemetadata import PhoneNumberDesc
from phonenumbers.phonenumberutil import (
    _MAX_INPUT_STRING_LENGTH,
    _MAX_LENGTH_FOR_NSN,
    _MIN_LENGTH_FOR_NSN,
)

__all__ = ["is_valid_e164", "normalise"]

# An E.164 address is at most a 3-digit country code plus a maximal national number; longer
# digit strings can only come out of parse() shortened, i.e. not canonical.
_MAX_E164_DIGITS = 3 + _MAX_LENGTH_FOR_NSN


def _desc_applies(desc: PhoneNumberDesc | None, length: int) -> str | None:
    """The pattern of `desc` if a number of `length` digits may match it, as in
    phonenumbers' _is_number_matching_desc (possible lengths, when listed, gate the
    pattern; a missing or empty pattern never matches)."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return desc.national_number_pattern


def _validity_pattern(metadata: PhoneMetadata, length: int) -> str | None:
    """One pattern whose fullmatch is exactly `_number_type_helper(nsn, metadata) != UNKNOWN`
    for national numbers of `length` digits, or None when no such number can be valid."""
    general = _desc_applies(metadata.general_desc, length)
    if general is None:
        return None
    # Every type that _number_type_helper maps to something other than UNKNOWN; mobile only
    # counts separately when its pattern differs from fixed line's (otherwise the helper never
    # looks at it, even if its possible lengths differ).  Likely types go first, mobile
    # before fixed line for an SMS sender: alternation order changes speed, not the result.
    descs = [] if metadata.same_mobile_and_fixed_line_pattern else [metadata.mobile]
    descs += [
        metadata.fixed_line,
        metadata.toll_free,
        metadata.premium_rate,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
    ]
    types = dict.fromkeys(p for p in (_desc_applies(d, length) for d in descs) if p is not None)
    if not types:
        return None
    alternatives = "|".join(f"(?:{p})" for p in types)
    # The lookahead is the general-description check, anchored to the end because a
    # lookahead is not bound by fullmatch.
    return rf"(?=(?:{general})\Z)(?:{alternatives})"


class _Matcher(Protocol):
    """What the hot path needs of a pattern, whether compiled yet or not."""

    def match(self, string: str, /) -> re.Match[str] | None: ...


class _LazyPattern:
    """A pattern compiled on its first match, which then takes this object's place in `slots`.

    A shared code's pattern runs to ~14,000 characters and takes ~50 ms to compile; most
    lengths of most codes are never seen, and the fully general patterns are only needed for
    numbers that start like a national prefix.
    """

    __slots__ = ("index", "slots", "source")

    def __init__(self, slots: list[_Matcher | None], index: int, source: str) -> None:
        self.slots = slots
        self.index = index
        self.source = source

    def match(self, string: str, /) -> re.Match[str] | None:
        compiled = re.compile(self.source)
        self.slots[self.index] = compiled
        return compiled.match(string)


def _lazy_patterns(sources: list[str | None]) -> list[_Matcher | None]:
    """One slot per source: None stays None, a source becomes a _LazyPattern in that slot."""
    slots: list[_Matcher | None] = [None] * len(sources)
    for index, source in enumerate(sources):
        if source is not None:
            slots[index] = _LazyPattern(slots, index, source)
    return slots


class _Country:
    """Compiled decision data for one country calling code, built on first use."""

    __slots__ = (
        "code",
        "code_length",
        "delegate",
        "general",
        "local_lengths",
        "possible_lengths",
        "prefix",
        "ready",
        "transform",
        "unstripped",
        "valid",
    )

    def __init__(self, code: int) -> None:
        self.code = code
        self.code_length = len(str(code))
        self.ready = False
        # True when the metadata is shaped in a way this module does not replicate (so far
        # never, with phonenumbers 9): every number of the code then goes to phonenumbers.
        self.delegate = False
        self.prefix: re.Pattern[str] | None = None
        self.transform = ""
        self.general: re.Pattern[str] | None = None
        self.possible_lengths: tuple[int, ...] = ()
        self.local_lengths: tuple[int, ...] = ()
        # Indexed by national number length: a pattern whose .match() is is_valid_number(),
        # or None where no number of that length can be valid.
        self.valid: list[_Matcher | None] = []
        # The same, additionally demanding that the national prefix pattern does not match
        # (so parse() keeps the number as it is): one regex call on the common path.
        self.unstripped: list[_Matcher | None] = []

    def build(self) -> None:
        regions = COUNTRY_CODE_TO_REGION_CODE[self.code]
        # parse() strips national prefixes with the metadata of the code's main region
        # (region_code_for_country_code), which is the first one listed.
        main = PhoneMetadata.metadata_for_region_or_calling_code(self.code, regions[0])
        general = None if main is None else main.general_desc
        if main is None or general is None or not general.possible_length:
            self.delegate = True
        else:
            self._build_prefix_stripping(main, general)
        lengths = range(_MAX_LENGTH_FOR_NSN + 1)
        if len(regions) == 1:
            # region_code_for_number() takes a lone region without looking at the number.
            sources = [self._validity_source(regions[0], n) for n in lengths]
        else:
            sources = [self._shared_source(regions, n) for n in lengths]
        guard = "" if self.prefix is None else f"(?!(?:{self.prefix.pattern}))"
        self.valid = _lazy_patterns(sources)
        self.unstripped = _lazy_patterns([s if s is None else guard + s for s in sources])
        self.ready = True

    def _build_prefix_stripping(self, main: PhoneMetadata, general: PhoneNumberDesc) -> None:
        if main.national_prefix_for_parsing:
            self.prefix = re.compile(main.national_prefix_for_parsing)
            self.transform = main.national_prefix_transform_rule or ""
            if self.transform and self.prefix.groups == 0:
                # phonenumbers would index an empty groups() tuple here; let it.
                self.delegate = True
        if general.national_number_pattern:
            self.general = re.compile(general.national_number_pattern)
        self.possible_lengths = general.possible_length
        self.local_lengths = general.possible_length_local_only

    def _metadata(self, region: str) -> PhoneMetadata | None:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(self.code, region)
        # is_valid_number_for_region() rejects a region whose own code differs.
        if (
            metadata is not None
            and region != REGION_CODE_FOR_NON_GEO_ENTITY
            and metadata.country_code != self.code
        ):
            return None
        return metadata

    def _validity_source(self, region: str, length: int) -> str | None:
        metadata = self._metadata(region)
        pattern = None if metadata is None else _validity_pattern(metadata, length)
        return None if pattern is None else rf"(?:{pattern})\Z"

    def _shared_source(self, regions: tuple[str, ...], length: int) -> str | None:
        """is_valid_number() for a code shared by several regions, as one regex.

        _region_code_for_number_from_list gives the number to the first region that claims
        it: by a prefix match of its leading digits when it has them, otherwise by being
        valid there.  Here each region is one branch of an atomic group, so the first branch
        that matches is final, as in that loop.  A leading-digits branch only looks ahead and
        sets an empty named group; the conditionals after the group then demand validity for
        the region that claimed it (a validity branch has consumed the number already).
        """
        branches: list[str] = []
        verdicts: list[tuple[str, str | None]] = []
        for index, region in enumerate(regions):
            # Looked up as that loop does, without the country-code check: a region whose
            # metadata disagrees still claims numbers, which is_valid_number_for_region() then
            # rejects.
            metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
            if metadata is None:
                continue
            checked = self._metadata(region)
            validity = None if checked is None else _validity_pattern(checked, length)
            if metadata.leading_digits is not None:
                name = f"r{index}"
                branches.append(f"(?=(?:{metadata.leading_digits}))(?P<{name}>)")
                verdicts.append((name, validity))
            elif validity is not None:
                branches.append(f"(?:{validity})\\Z")
        if not any(v is not None for _, v in verdicts) and len(branches) == len(verdicts):
            return None  # every claimant rejects numbers of this length
        tail = ""
        for name, validity in reversed(verdicts):
            verdict = "(?!)" if validity is None else f"(?:{validity})\\Z"
            tail = f"(?({name}){verdict}|{tail})"
        return f"(?>{'|'.join(branches)}){tail}"

    def strip_prefix_unchecked(self, nsn: str) -> str:
        """What _maybe_strip_national_prefix_carrier_code keeps of `nsn` (no length check)."""
        prefix = self.prefix
        if prefix is None:
            return nsn
        match = prefix.match(nsn)
        if match is None:
            return nsn
        general = self.general
        viable = general is not None and general.fullmatch(nsn) is not None
        if not self.transform or match.groups()[-1] is None:
            stripped = nsn[match.end() :]
        else:
            stripped = prefix.sub(self.transform, nsn, count=1)
        if viable and (general is None or general.fullmatch(stripped) is None):
            return nsn
        return stripped

    def strip_national_prefix(self, nsn: str) -> str:
        """What parse() keeps of `nsn` after _maybe_strip_national_prefix_carrier_code and
        the _test_number_length check that follows it."""
        stripped = self.strip_prefix_unchecked(nsn)
        if stripped == nsn:
            return nsn
        length = len(stripped)
        if length in self.local_lengths:
            return nsn
        lengths = self.possible_lengths
        shortest = lengths[0]
        if shortest == length or (
            shortest < length and (lengths[-1] < length or length in lengths[1:])
        ):
            return stripped
        return nsn


def _countries_by_first_digits() -> dict[str, _Country]:
    """The first three digits after the '+' -> the country whose code they start with,
    shortest code first as in _extract_country_code (codes never start with 0).  Cheap to
    build; the expensive part is deferred to _Country.build()."""
    countries = {str(code): _Country(code) for code in COUNTRY_CODE_TO_REGION_CODE if code > 0}
    table: dict[str, _Country] = {}
    for number in range(100, 1000):
        digits = str(number)
        country = countries.get(digits[:1]) or countries.get(digits[:2]) or countries.get(digits)
        if country is not None:
            table[digits] = country
    return table


_COUNTRIES = _countries_by_first_digits()


class _Region:
    """What parse() needs of a default region to read a national-format number, built on
    first use: its own national prefix rules (a region sharing a calling code may strip
    differently from the code's main region: '1' plus seven digits for the NANP islands,
    '0' with a local-number transform for GG, IM, JE, CC, CX), its international dialling
    prefix, and the _Country that judges the result."""

    __slots__ = ("code", "country", "delegate", "idd", "national")

    def __init__(self, region: str) -> None:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        self.delegate = True
        self.idd: re.Pattern[str] | None = None
        self.code = ""
        # Only the prefix-stripping fields of this _Country are used, set from the
        # region's own metadata (never build()): strip_national_prefix() and
        # strip_prefix_unchecked() then are parse()'s for this region.
        self.national = _Country(0)
        found = None if metadata is None else _COUNTRIES.get(f"{metadata.country_code}00"[:3])
        self.country = _Country(0) if found is None else found
        general = None if metadata is None else metadata.general_desc
        if metadata is None or found is None or found.code != metadata.country_code:
            return
        if general is None or not general.possible_length:
            return
        self.national._build_prefix_stripping(metadata, general)
        if self.national.delegate:
            return
        self.code = str(metadata.country_code)
        if metadata.international_prefix is not None:
            self.idd = re.compile(metadata.international_prefix)
        self.delegate = False


# Filled on first use, only with region codes parse() accepts (SUPPORTED_REGIONS: ~245).
_REGIONS: dict[str, _Region] = {}


def _reference(raw: str, default_region: str | None) -> str | None:
    """phonenumbers' own verdict: the E.164 form of a valid number, else None."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def is_valid_e164(address: str) -> bool:
    """True when `address` is canonical E.164 ('+', country code, national number, digits only,
    no spaces) and phonenumbers considers it a valid number; i.e. exactly
    `phonenumbers.is_valid_number(p) and phonenumbers.format_number(p, E164) == address`
    for p = phonenumbers.parse(address, None) (False when parse raises)."""
    # The body is written out rather than shared with normalise(): at ~1 µs a call, each
    # extra Python call would cost a tenth of the time.
    digits = address[1:]
    if address[:1] != "+" or not (digits.isascii() and digits.isdigit()):
        return False
    if not _MIN_LENGTH_FOR_NSN < len(digits) <= _MAX_E164_DIGITS:
        return False  # parse() raises, or shortens it to something that is not this address
    country = _COUNTRIES.get(digits[:3])
    if country is None:
        return False  # no known code: parse() raises, with or without the '+'
    if not country.ready:
        country.build()
    if country.delegate:
        return _reference(address, None) == address
    nsn = digits[country.code_length :]
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return False
    # Leading zeros need no care: parse() records them (italian_leading_zero) and
    # national_significant_number() puts back exactly as many as there were.
    pattern = country.unstripped[len(nsn)]
    if pattern is None:
        return False
    if pattern.match(nsn) is not None:
        return True
    # Invalid, or starting like a national prefix.  A number parse() shortens is valid at best
    # in its shortened form, which is then not this address.
    prefix = country.prefix
    if prefix is None or prefix.match(nsn) is None or country.strip_national_prefix(nsn) != nsn:
        return False
    pattern = country.valid[len(nsn)]
    return pattern is not None and pattern.match(nsn) is not None


def normalise(raw: str, default_region: str | None = None) -> str | None:
    """The E.164 form of a phone number written in any common way ('+1 (914) 318-8062', '00 44 …',
    national '(914) 318-8062' with default_region='US'), or None when it is not a valid number.
    Exactly phonenumbers' verdict: parse(raw, default_region), is_valid_number, format E164."""
    if len(raw) > _MAX_INPUT_STRING_LENGTH:
        return None  # parse() refuses before looking
    # parse() ignores whatever precedes the first '+' or digit, and trailing punctuation.
    text = raw if raw[:1] == "+" else raw.strip()
    if text[:1] == "+":
        digits = text[1:]
        if not (digits.isascii() and digits.isdigit()):
            # The separators people type that parse() simply drops: all are in phonenumbers'
            # _VALID_PUNCTUATION, none can start an extension or a second number. Tabs,
            # slashes, 'x', '#', ',' and ';' are left to parse(), which treats them
            # specially. Chained str.replace beats str.translate ~2.5x on short strings.
            digits = (
                digits.replace(" ", "")
                .replace("(", "")
                .replace(")", "")
                .replace(".", "")
                .replace("-", "")
            )
        if digits.isascii() and digits.isdigit():
            e164 = _from_international(digits, default_region)
            if e164 != _UNDECIDED:
                return e164
    elif default_region is not None:
        digits = text
        if not (digits.isascii() and digits.isdigit()):
            # The same separators as above.  parse() starts at the first digit and drops
            # trailing punctuation, and none of them can form an extension, so what it
            # reads is exactly these digits.
            digits = (
                digits.replace(" ", "")
                .replace("(", "")
                .replace(")", "")
                .replace(".", "")
                .replace("-", "")
            )
        # Three digits at least: then parse() finds the input viable whatever separators
        # were between them (exactly two digits must stand alone).
        if len(digits) >= 3 and digits.isascii() and digits.isdigit():
            e164 = _from_national(digits, default_region)
            if e164 != _UNDECIDED:
                return e164
    return _reference(raw, default_region)


# What _from_international() returns for input it leaves to phonenumbers: never E.164.
_UNDECIDED = ""


def _from_international(digits: str, default_region: str | None) -> str | None:
    """What parse() + is_valid_number() + format_number(E164) make of '+' `digits` (ASCII
    digits), or _UNDECIDED."""
    if len(digits) <= _MIN_LENGTH_FOR_NSN:
        return None  # parse(): not a number / too short after the '+'
    country = _COUNTRIES.get(digits[:3])
    if country is None:
        # parse() retries without the '+', and with a default region may then read its
        # international prefix ('+011 44 …' for US): rare enough to leave to it.  Without one
        # it finds nothing.
        return None if default_region is None else _UNDECIDED
    if not country.ready:
        country.build()
    if country.delegate:
        return _UNDECIDED
    # From here on default_region plays no part: parse() took the code after the '+'.
    nsn = digits[country.code_length :]
    if len(nsn) < _MIN_LENGTH_FOR_NSN:
        return None  # parse(): TOO_SHORT_NSN
    if len(nsn) <= _MAX_LENGTH_FOR_NSN:
        pattern = country.unstripped[len(nsn)]
        if pattern is not None and pattern.match(nsn) is not None:
            return "+" + digits
    if country.prefix is not None:
        nsn = country.strip_national_prefix(nsn)
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return None  # parse(): TOO_LONG
    pattern = country.valid[len(nsn)]
    if pattern is None or pattern.match(nsn) is None:
        return None
    return f"+{digits[: country.code_length]}{nsn}"


def _from_national(digits: str, default_region: str) -> str | None:
    """What parse(`digits`, default_region) + is_valid_number() + format_number(E164) make
    of ASCII `digits` (no '+', at least three), or _UNDECIDED."""
    region = _REGIONS.get(default_region)
    if region is None:
        if default_region not in phonenumbers.SUPPORTED_REGIONS:
            return _UNDECIDED  # parse() refuses the region (it is case-sensitive here)
        region = _REGIONS[default_region] = _Region(default_region)
    if region.delegate:
        return _UNDECIDED
    idd = region.idd
    if idd is not None and idd.match(digits) is not None:
        # parse() may read an international prefix ('011 44 …', '00 49 …'): left to it.
        return _UNDECIDED
    country = region.country
    if not country.ready:
        country.build()
    if country.delegate:
        return _UNDECIDED
    national = region.national
    code = region.code
    if digits.startswith(code):
        # _maybe_extract_country_code: the digits may begin with the region's own calling
        # code ('1 914 318 8062' in the US).  parse() takes it as such if the number did
        # not match the region's general pattern before and does after removing it and a
        # national prefix, or if it was too long for the region.
        potential = national.strip_prefix_unchecked(digits[len(code) :])
        general = national.general
        length = len(digits)
        if (
            general is not None
            and general.fullmatch(digits) is None
            and general.fullmatch(potential) is not None
        ) or (length > national.possible_lengths[-1] and length not in national.local_lengths):
            # National prefix stripping then uses the metadata of the code's main region,
            # as does the international path.
            if len(potential) < _MIN_LENGTH_FOR_NSN:
                return None  # parse(): TOO_SHORT_NSN
            return _judge(country, country.strip_national_prefix(potential))
    return _judge(country, national.strip_national_prefix(digits))


def _judge(country: _Country, nsn: str) -> str | None:
    """The E.164 form of national number `nsn` under `country` if valid, else None."""
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return None  # parse(): TOO_LONG (too short cannot happen with three digits or more)
    pattern = country.valid[len(nsn)]
    if pattern is None or pattern.match(nsn) is None:
        return None
    return f"+{country.code}{nsn}"
