"""The PII guard: validators, detection in text, redaction, the vault and the guard."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from genaiops.errors import ConfigError
from genaiops.guardrails.base import Guard
from genaiops.guardrails.pii import samples
from genaiops.guardrails.pii import validators as v
from genaiops.guardrails.pii.detectors import ENTITY_KINDS, Candidate, PIIDetector, resolve
from genaiops.guardrails.pii.guard import PIIGuard
from genaiops.guardrails.pii.redaction import StreamingRestorer, Vault, hash_spans, mask, redact

DETECTOR = PIIDetector()
VALIDATORS = {
    "EMAIL": v.email, "PHONE": v.phone, "CREDIT_CARD": v.credit_card, "IBAN": v.iban,
    "IP_ADDRESS": v.ip_address, "CPF": v.cpf, "CNPJ": v.cnpj, "CURP": v.curp, "RFC": v.rfc,
    "RUT": v.rut, "DNI_AR": v.dni_ar, "CUIT": v.cuit, "CEDULA_CO": v.cedula_co, "NIT": v.nit,
    "DNI_PE": v.dni_pe, "RUC": v.ruc, "RG": v.rg,
}  # fmt: skip
NO_CHECK_DIGIT = {"DNI_AR", "CEDULA_CO", "RG"}
LABELS = {
    "EMAIL": "email", "PHONE": "tel", "CREDIT_CARD": "tarjeta", "IBAN": "IBAN",
    "IP_ADDRESS": "IP", "CPF": "CPF", "CNPJ": "CNPJ", "CURP": "CURP", "RFC": "RFC",
    "RUT": "RUT", "DNI_AR": "DNI argentino", "CUIT": "CUIT", "CEDULA_CO": "C.C.",
    "NIT": "NIT", "DNI_PE": "DNI peruano", "RUC": "RUC", "RG": "RG",
}  # fmt: skip
FRAMES = ("Mi {label} es {v}, gracias.", "Meu {label} é {v}.", "My {label} is {v}. Thanks!")


def found(text: str) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in DETECTOR.detect(text)]


def rng_for(kind: str) -> random.Random:
    return random.Random(f"pii-{kind}")


# Validators


@pytest.mark.parametrize("kind", ENTITY_KINDS)
def test_validators_accept_generated_values(kind: str) -> None:
    rng = rng_for(kind)
    values = [samples.valid(kind, rng) for _ in range(300)]
    assert [x for x in values if not VALIDATORS[kind](x)] == []


@pytest.mark.parametrize("kind", sorted(set(ENTITY_KINDS) - NO_CHECK_DIGIT))
def test_validators_reject_lookalikes(kind: str) -> None:
    rng = rng_for(kind)
    values = [samples.lookalike(kind, rng) for _ in range(300)]
    assert [x for x in values if VALIDATORS[kind](x)] == []


@pytest.mark.parametrize(
    ("check", "value", "ok"),
    [
        (v.cpf, "529.982.247-25", True), (v.cpf, "529.982.247-52", False),
        (v.cpf, "111.111.111-11", False), (v.cnpj, "11.222.333/0001-81", True),
        (v.cnpj, "11.222.333/0001-18", False), (v.cnpj, "00000000000000", False),
        (v.cnpj, "12.ABC.345/01DE-35", True),  # the 2026 alphanumeric CNPJ
        (v.curp, "BOXW310820HNERXN09", True), (v.curp, "BOXW310820HNERXN08", False),
        (v.curp, "BOXW310820HXXRXN09", False), (v.curp, "BOXW311320HNERXN09", False),
        (v.rfc, "GODE561231GR8", True), (v.rfc, "MAB9307148T4", True),
        (v.rfc, "VACE460910SX6", False), (v.rfc, "GODE561331GR8", False),
        (v.rut, "76.086.428-5", True), (v.rut, "76.086.428-4", False),
        (v.cuit, "20-05536168-2", True), (v.cuit, "20267565393", True),
        (v.cuit, "20267565392", False), (v.cuit, "21267565393", False),
        (v.nit, "213.123.432-1", True), (v.nit, "2131234351", True), (v.nit, "2131234350", False),
        (v.ruc, "20512333797", True), (v.ruc, "20512333798", False), (v.ruc, "30512333797", False),
        (v.dni_pe, "10117410-2", True), (v.dni_pe, "10117410-3", False),
        (v.dni_pe, "10117410", True),
        (v.dni_ar, "30.123.456", True), (v.dni_ar, "123456", False),
        (v.cedula_co, "1.020.304.050", True), (v.cedula_co, "12345", False),
        (v.iban, "ES91 2100 0418 4502 0005 1332", True),
        (v.iban, "GB82 WEST 1234 5698 7654 32", True),
        (v.iban, "ES91 2100 0418 4502 0005 133", False), (v.iban, "DE89370400440532013001", False),
        (v.credit_card, "4111 1111 1111 1111", True), (v.credit_card, "378282246310005", True),
        (v.credit_card, "4111 1111 1111 1112", False), (v.credit_card, "9111111111111111", False),
        (v.credit_card, "411111111111116", False),  # Luhn holds, but no Visa has 15 digits
        (v.ip_address, "203.0.113.7", True), (v.ip_address, "2001:db8::1", True),
        (v.ip_address, "256.1.1.1", False), (v.ip_address, "127.0.0.1", False),
        (v.email, "joão.silva@empresa.com.br", True), (v.email, "ana@empresa", False),
        (v.email, "ana@@empresa.com", False),
    ],
)  # fmt: skip
def test_known_values(check: object, value: str, ok: bool) -> None:
    assert callable(check)
    assert check(value) is ok


def test_nit_of_natural_persons_has_the_cedula_as_body() -> None:
    # DIAN weights 3, 7, 13... from the rightmost body digit: bodies of 6 to 15 digits.
    for value in ("79.123.456-0", "1.020.345.678-8", "123456-3", "52345678901234-0"):
        assert v.nit(value), value
    for value in ("79.123.456-1", "1.020.345.678-7", "12345-8", "1234567890123456-0"):
        assert not v.nit(value), value
    assert found("NIT 79.123.456-0") == [("NIT", "79.123.456-0")]
    assert found("Factura a nombre de NIT 1.020.345.678-8.") == [("NIT", "1.020.345.678-8")]
    assert found("NIT: 10203456788") == [("NIT", "10203456788")]
    assert found("NIT 79.123.456-1") == []
    # Bodies other than a company's nine digits count only after the keyword.
    assert ("NIT", "1.020.345.678-8") not in found("Código 1.020.345.678-8")
    assert found("NIT 800.197.268-4") == [("NIT", "800.197.268-4")]
    assert found("con 800.197.268-4") == [("NIT", "800.197.268-4")]


def test_rut_bodies_under_a_million_need_the_keyword() -> None:
    assert v.rut("999.999-K") and v.rut("654321-9")
    assert not v.rut("999.999-3") and not v.rut("12345-6")
    assert found("RUT 999.999-K") == [("RUT", "999.999-K")]
    assert found("Mi RUN es 654321-9.") == [("RUT", "654321-9")]
    assert found("RUT 999.999-3") == []
    assert found("El lote 654.321-9 llegó") == []
    assert found("Anoté 999.999-K en la planilla") == []


# Phones


@pytest.mark.parametrize("country", samples.PHONE_COUNTRIES)
@pytest.mark.parametrize("international", [True, False])
def test_phones_per_country_are_found(country: str, international: bool) -> None:
    rng = rng_for(country + str(international))
    for _ in range(40):
        number = samples.phone(rng, country, international)
        text = f"Puedes llamarme al {number} después de las 18h."
        assert found(text) == [("PHONE", number)], text


@pytest.mark.parametrize("country", samples.PHONE_COUNTRIES)
def test_phone_lookalikes_per_country_are_not_found(country: str) -> None:
    rng = rng_for("bad" + country)
    for _ in range(40):
        number = samples.phone_lookalike(rng, country)
        assert found(f"Teléfono: {number}") == [], number


@pytest.mark.parametrize(
    "number",
    [
        "+55 20 98765-4321",  # BR: no DDD 20
        "+55 11 8765-432",  # BR: too short
        "+52 05 1234 5678",  # MX: no area code starts with 0
        "+54 9 11 1234-567",  # AR: too short
        "+57 200 123 4567",  # CO: neither mobile (3xx) nor landline (60x)
        "+56 1 2345 6789",  # CL
        "+51 812 345 678",  # PE: 9 digits must be a mobile (9...)
        "+34 512 345 678",  # ES: 5 is not a phone prefix
        "+1 (123) 456-7890",  # US: area code starts with 1
        "+1 212 055 1234",  # US: exchange starts with 0
        "+44 12",  # E.164: too short
    ],
)
def test_phone_structure_is_checked(number: str) -> None:
    assert found(f"Tel: {number}") == []


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("(01) 234-5678", "PE"),  # Lima: trunk 0, area 1, seven digits
        ("01 234 5678", "PE"),
        ("064 234567", "PE"),  # Huancayo: trunk 0, area 64, six digits
        ("(064) 234 567", "PE"),
        ("(32) 234 5678", "CL"),  # Valparaíso: area 32, seven digits
        ("(2) 2345 6789", "CL"),  # Santiago
        ("(011) 98765-4321", "BR"),  # trunk 0 before the DDD
        ("(021) 3456-7890", "BR"),
        ("1-800-555-0199", "US"),  # NANP with the leading 1
        ("1 (212) 555-0123", "US"),
        ("11 15 2345-6789", "AR"),  # Buenos Aires mobile with the old 15
        ("0341 15 456-7890", "AR"),
        ("(11) 3456-7890", "BR"),  # a two-digit area in parentheses is a Brazilian DDD
        ("98765 4321", "CL"),  # a Chilean mobile in two groups
        ("044 55 1234 5678", "MX"),  # Mexico's retired mobile prefix
        ("01 998 970 7510", "MX"),  # and its long-distance one: not the US number after it
        ("56 9 8765 4321", "CL"),  # a country code without its "+" is part of the number
        ("55 11 98765-4321", "BR"),
        ("52 55 1234 5678", "MX"),
    ],
)
def test_national_phone_formats_are_found_and_fully_masked(number: str, country: str) -> None:
    text = f"Puedes llamarme al {number} después de las 18h."
    spans = DETECTOR.detect(text)
    assert [(s.kind, s.text, s.detail["country"]) for s in spans] == [("PHONE", number, country)]
    assert mask(text, spans) == "Puedes llamarme al <PHONE_1> después de las 18h."


@pytest.mark.parametrize(
    "number",
    [
        "(01) 234-567",  # PE: Lima numbers have seven digits
        "069 234567",  # PE: no area 69
        "012 345678",  # PE: a three-digit group after the 0 is a two-digit area
        "(30) 234 5678",  # CL: no area 30
        "(020) 98765-4321",  # BR: no DDD 20
        "1-800-055-0199",  # US: exchange starts with 0
        "1 (123) 555-0123",  # US: area code starts with 1
        "11 20 1534-5678",  # AR: the second group of a mobile is 15
        "11 15 0345-6789",  # AR: no subscriber number starts with 0
        "(20) 3456-7890",  # AR/MX/BR: no two-digit area 20 in any of them
        "(020) 92522-1621",  # BR shape with a wrong DDD: not a Chilean "92522 1621"
        "18765 4321",  # CL: mobiles start with 9
    ],
)
def test_national_phone_lookalikes_are_not_found(number: str) -> None:
    assert found(f"Teléfono: {number}") == []


def test_phone_words_include_chilean_fono() -> None:
    assert found("fono 223456789") == [("PHONE", "223456789")]
    assert found("Fono: 322345678") == [("PHONE", "322345678")]
    assert found("teléfono fijo 012345678") == [("PHONE", "012345678")]
    assert found("cel. 987654321") == [("PHONE", "987654321")]


def test_bare_digits_are_a_phone_only_after_a_phone_word() -> None:
    assert found("Celular: 3001234567") == [("PHONE", "3001234567")]
    assert found("Referencia 3001234567") == []
    assert found("Pedido 612 345 678 enviado") == []
    assert found("WhatsApp 612 345 678") == [("PHONE", "612 345 678")]
    # A quantity, and a reference number that starts with a calling code.
    assert found("Cantidad 300 123 4567 unidades") == []
    assert found("ref 56 9 8765 4321") == []


def test_a_phone_word_does_not_hide_an_identifier_that_cannot_be_dialled() -> None:
    # The keyword names a phone, but the digits read only as a CPF: masking it as a CPF is
    # better than leaving it in clear.
    assert found("Fono: 529.982.247-25") == [("CPF", "529.982.247-25")]
    assert found("Mi celular es 529.982.247-25") == [("CPF", "529.982.247-25")]
    # Where the digits do read as a phone, the phone word decides.
    assert found("celular 3001234567") == [("PHONE", "3001234567")]


def test_keywords_written_informally() -> None:
    # A RUT without its hyphen after the keyword, the check digit last (K included).
    assert found("RUT 123456785") == [("RUT", "123456785")]
    assert found("rut 10000013k") == [("RUT", "10000013k")]
    assert found("RUT 123456784") == []  # wrong check digit
    assert found("DNI 12345678K") == []  # only a RUT ends in a bare K
    # A Colombian cédula after a lower-case "cc".
    assert found("mi cc 1020304050") == [("CEDULA_CO", "1020304050")]
    assert found("cc: ana@example.com") == [("EMAIL", "ana@example.com")]


# Detection in text


@pytest.mark.parametrize("kind", ENTITY_KINDS)
def test_values_are_found_with_exact_offsets(kind: str) -> None:
    rng = rng_for("text" + kind)
    for i in range(60):
        value = samples.valid(kind, rng)
        head, tail = FRAMES[i % 3].replace("{label}", LABELS[kind]).split("{v}")
        text = head + value + tail
        spans = DETECTOR.detect(text)
        assert [(s.kind, s.start, s.end, s.text) for s in spans] == [
            (kind, len(head), len(head) + len(value), value)
        ], text


@pytest.mark.parametrize("kind", sorted(set(ENTITY_KINDS) - NO_CHECK_DIGIT))
def test_lookalikes_next_to_their_keyword_are_not_pii(kind: str) -> None:
    rng = rng_for("look" + kind)
    for i in range(60):
        text = FRAMES[i % 3].format(label=LABELS[kind], v=samples.lookalike(kind, rng))
        assert found(text) == [], text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hola, soy Ana. Mi CURP es GODE561231HDFRRN00 y mi RFC GODE561231GR8; "
            "escríbeme a ana.gomez@correo.mx o llama al +52 55 1234 5678.",
            [("CURP", "GODE561231HDFRRN00"), ("RFC", "GODE561231GR8"),
             ("EMAIL", "ana.gomez@correo.mx"), ("PHONE", "+52 55 1234 5678")],
        ),
        (
            "Olá! CPF 529.982.247-25, empresa CNPJ 11.222.333/0001-81, cartão 4111 1111 1111 1111 "
            "e celular (11) 98765-4321. Acesso pelo IP 200.147.3.10.",
            [("CPF", "529.982.247-25"), ("CNPJ", "11.222.333/0001-81"),
             ("CREDIT_CARD", "4111 1111 1111 1111"), ("PHONE", "(11) 98765-4321"),
             ("IP_ADDRESS", "200.147.3.10")],
        ),
        (
            "Customer: RUT 76.086.428-5, IBAN GB82 WEST 1234 5698 7654 32, CUIT 20-05536168-2, "
            "NIT 213.123.432-1 and RUC 20512333797. Her C.C. is 1.020.304.050.",
            [("RUT", "76.086.428-5"), ("IBAN", "GB82 WEST 1234 5698 7654 32"),
             ("CUIT", "20-05536168-2"), ("NIT", "213.123.432-1"), ("RUC", "20512333797"),
             ("CEDULA_CO", "1.020.304.050")],
        ),
        (
            # The 2026 alphanumeric CNPJ, formatted and bare after its keyword.
            "CNPJ 12.ABC.345/01DE-35 da matriz; da filial, CNPJ: 12ABC34501DE35.",
            [("CNPJ", "12.ABC.345/01DE-35"), ("CNPJ", "12ABC34501DE35")],
        ),
        (
            "Mi DNI es 30.123.456 (Buenos Aires) y el de mi socio, DNI 10117410-2, de Lima.",
            [("DNI_AR", "30.123.456"), ("DNI_PE", "10117410-2")],
        ),
    ],
)  # fmt: skip
def test_texts_with_several_entities(text: str, expected: list[tuple[str, str]]) -> None:
    spans = DETECTOR.detect(text)
    assert [(s.kind, s.text) for s in spans] == expected
    assert all(text[s.start : s.end] == s.text for s in spans)


@pytest.mark.parametrize(
    "text",
    [
        "La reunión es el 12.03.2024 a las 10:30; el 2024-01-15T10:30:00Z llegó el lote.",
        "Había 12.345.678 unidades y el total fue $ 1.234.567,89 (R$ 98.765.432,10).",
        "ISBN 978-3-16-148410-0, ISBN 978-84-376-0494-7 e ISSN 0317-8471.",
        "Actualiza a la versión 10.0.19041.1 o a la v1.2.3.4; versión 2.3.1.4 también sirve.",
        "Pedido nº 2024-000123, orden 123-456-7890, factura 12345678909 y ticket 4532015112830366.",
        "Timestamp 1700000000000, epoch 1699999999 y uuid 123e4567-e89b-12d3-a456-426614174000.",
        "The price is USD 1,299.00 and the code is 612.345.678; call at 10:30:45.",
        "Mi DNI está en trámite; el número 30.123.456 es del inventario.",
        "Coordenadas -34.6037, -58.3816; temperatura 25.5; hora 14:02:11; MAC 00:1A:2B:3C:4D:5E.",
        "See section 3.2.1.4 of the contract; veja o item 4.1.2.3 do edital.",
        "Upgrade the firmware to 2.4.1.8; el OID 1.3.6.1 identifica la MIB (cláusula 7.1.2.3).",
        "Según el artículo 3.2.1.4 del reglamento y el numeral 5.2.1.1 del anexo 1.1.2.3.",
        "See figure 2.1.3.4, table 3.1.2.4 and step 1.2.3.4; o artigo 4.1.2.3 e a tabela 6.1.1.2.",
        # Four-part software versions: pinned, abbreviated, in package and file names.
        "pip install numpy==1.26.4.0 libfoo-1.2.3.4.tar.gz; instale o setup 4.2.0.1.exe",
        "Veja as notas da ver. 1.0.0.2 antes de atualizar.",
        # A product code shaped like an alphanumeric CNPJ, without the keyword.
        "Código do produto 12ABC34501DE35, lote 7.",
    ],
)
def test_adversarial_lookalikes_are_not_pii(text: str) -> None:
    assert found(text) == []


def test_addresses_next_to_version_lookalikes_are_still_found() -> None:
    assert found("O servidor IP-10.0.0.7 caiu; ssh root@10.0.0.8 ou host=10.0.0.9.") == [
        ("IP_ADDRESS", "10.0.0.7"),
        ("IP_ADDRESS", "10.0.0.8"),
        ("IP_ADDRESS", "10.0.0.9"),
    ]


def test_identifiers_without_check_digit_need_a_keyword_just_before() -> None:
    assert found("El número 30.123.456 quedó registrado.") == []
    assert found("Mi DNI: 30.123.456") == [("DNI_AR", "30.123.456")]
    assert found("C.C. 79.123.456") == [("CEDULA_CO", "79.123.456")]
    assert found("documento de identidad nº 1020304050") == [("CEDULA_CO", "1020304050")]
    # Too far from the keyword, in another sentence, or after another number.
    assert found("Mi DNI lo tengo guardado en algún lugar de casa: 30.123.456") == []
    assert found("Olvidé el DNI. Tengo 30.123.456 puntos.") == []
    assert found("DNI 30.123.456 y 28.765.432") == [("DNI_AR", "30.123.456")]


def test_dni_country_comes_from_the_text_the_shape_or_the_configuration() -> None:
    # Named country, dots (Argentina) and a leading zero (only Peru) decide.
    assert found("DNI argentino 30123456") == [("DNI_AR", "30123456")]
    assert found("Soy de Lima, mi DNI es 45678912") == [("DNI_PE", "45678912")]
    assert found("Meu DNI é 30.123.456") == [("DNI_AR", "30.123.456")]
    assert found("My DNI is 04567891") == [("DNI_PE", "04567891")]
    # Eight bare digits and no country: either one, not a guess.
    assert found("Mi DNI es 30123456") == [("DNI", "30123456")]
    configured = PIIDetector(dni_country="AR").detect("Mi DNI es 30123456")
    assert [(s.kind, s.text) for s in configured] == [("DNI_AR", "30123456")]
    assert [s.kind for s in PIIGuard({"dni_country": "PE"}).check("DNI 30123456").spans] == [
        "DNI_PE"
    ]
    # Asking for one country's DNI includes the undecided ones; other kinds exclude them.
    assert [s.kind for s in PIIDetector(["DNI_AR"]).detect("DNI 30123456")] == ["DNI"]
    assert PIIDetector(["CPF"]).detect("DNI 30123456") == []
    text = "Mi DNI es 30123456"
    assert mask(text, PIIDetector().detect(text)) == "Mi DNI es <DNI_1>"
    with pytest.raises(ConfigError):
        PIIGuard({"dni_country": "BR"})


def test_extra_keywords_vouch_for_numbers() -> None:
    assert PIIGuard().check("Matrícula 12.345.678").spans == []
    spans = PIIGuard({"keywords": ["matrícula"]}).check("Matrícula 12.345.678").spans
    assert [s.text for s in spans] == ["12.345.678"]


def test_brazilian_rg_counts_after_its_keyword() -> None:
    assert found("portador do RG nº 12.345.678-9 SSP/SP e do CPF 529.982.247-25") == [
        ("RG", "12.345.678-9"),
        ("CPF", "529.982.247-25"),
    ]
    assert found("RG: 123456789; r.g. 12.345.678-X") == [
        ("RG", "123456789"),
        ("RG", "12.345.678-X"),
    ]
    # Without the keyword, or too short to be one, it is some other number.
    assert found("O lote 12.345.678-9 chegou; a sala RG 12 fica no térreo.") == []


def test_fullwidth_digits_and_nbsp_keep_original_offsets() -> None:
    text = "ＣＰＦ：５２９．９８２．２４７－２５ y tel\u00a0+55\u00a011\u00a098765\u20114321."
    spans = DETECTOR.detect(text)
    assert [(s.kind, s.text) for s in spans] == [
        ("CPF", "５２９．９８２．２４７－２５"),
        ("PHONE", "+55\u00a011\u00a098765\u20114321"),
    ]
    assert all(text[s.start : s.end] == s.text for s in spans)


# Overlaps


def _both(
    rng: random.Random,
    first: Callable[[str], bool],
    second: Callable[[str], bool],
    make: Callable[[random.Random], str],
) -> str:
    """A generated value that both validators accept (a coincidence of check digits)."""
    while not (first(value := make(rng)) and second(value)):
        pass
    return value


def test_overlapping_readings_resolve_to_one_kind() -> None:
    rng = random.Random(5)
    assert found("CNPJ 11222333000181") == [("CNPJ", "11222333000181")]
    assert found("Fone ou CNPJ: 11.222.333/0001-81") == [("CNPJ", "11.222.333/0001-81")]
    assert found("RUC 10054148289, DNI 05414828") == [
        ("RUC", "10054148289"),
        ("DNI_PE", "05414828"),
    ]
    # Digits valid as both a CPF and a CUIT: the keyword decides, and rules the other out.
    both = _both(rng, v.cpf, v.cuit, lambda r: "20" + "".join(r.choices("0123456789", k=9)))
    assert found(f"CUIL {both}") == [("CUIT", both)]
    assert found(f"CPF {both}") == [("CPF", both)]
    # A RUC beginning with 20 is often a valid CUIT too; bare, it reads as a RUC.
    ruc = _both(rng, v.ruc, v.cuit, samples.ruc)
    assert found(f"CUIT {ruc}") == [("CUIT", ruc)]
    assert found(f"RUC {ruc}") == [("RUC", ruc)]
    assert found(f"con {ruc}") == [("RUC", ruc)]
    # A Peruvian DNI with a wrong check digit can be a valid Chilean RUT: the keyword says
    # which was meant (a DNI's right check digit is never a RUT's: same weights, other map).
    wrong = _both(rng, v.rut, lambda x: not v.dni_pe(x), lambda r: samples.lookalike("DNI_PE", r))
    assert found(f"DNI {wrong}") == []
    assert found(f"RUT {wrong}") == [("RUT", wrong)]


def test_card_digits_inside_an_iban_are_not_a_card() -> None:
    iban = "ES12 4111 1111 1111 1111 1234"  # wrong IBAN check digits, a valid Visa inside
    assert not v.iban(iban)
    assert found(f"IBAN {iban}") == []


def test_resolve_keeps_the_longest_then_the_highest_priority() -> None:
    cands = [
        Candidate(0, 11, "PHONE", "p", 30),
        Candidate(0, 14, "CNPJ", "c", 61),
        Candidate(20, 31, "CUIT", "u", 53),
        Candidate(20, 31, "RUC", "r", 54),
        Candidate(12, 22, "EMAIL", "e", 60),
    ]
    assert [c.kind for c in resolve(cands)] == ["CNPJ", "RUC"]


# Redaction and the vault


def test_mask_numbers_per_kind_and_reuses_placeholders() -> None:
    text = "CPF 529.982.247-25, tel +55 11 98765-4321, de novo CPF 52998224725 e ana@x.com.br."
    assert mask(text, DETECTOR.detect(text)) == (
        "CPF <CPF_1>, tel <PHONE_1>, de novo CPF <CPF_1> e <EMAIL_1>."
    )


def test_hash_is_keyed_stable_and_canonical() -> None:
    text = "CPF 529.982.247-25 ou 52998224725"
    spans = DETECTOR.detect(text)
    out = hash_spans(text, spans, key=b"k1")
    tokens = re.findall(r"<CPF:([0-9a-f]{10})>", out)
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert hash_spans(text, spans, key="k1") == out
    assert hash_spans(text, spans, key=b"k2") != out
    assert redact(text, spans, "hash", key=b"k1") == out
    with pytest.raises(ConfigError):
        hash_spans(text, spans, key=b"")
    with pytest.raises(ConfigError):
        redact(text, spans, "shred")  # type: ignore[arg-type]


def test_vault_round_trip_with_repeated_values() -> None:
    vault = Vault()
    prompt = "Soy ana@correo.mx, CURP GODE561231HDFRRN00; repito: ana@correo.mx. Tel 55 1234 5678"
    masked = vault.mask(prompt)
    assert masked == "Soy <EMAIL_1>, CURP <CURP_1>; repito: <EMAIL_1>. Tel <PHONE_1>"
    assert vault.restore(masked) == prompt
    second = vault.mask("Y mi otro correo: bob@correo.mx, el primero ana@correo.mx")
    assert second == "Y mi otro correo: <EMAIL_2>, el primero <EMAIL_1>"
    answer = "<PHONE_1> y <EMAIL_1>; <EMAIL_1> otra vez, <EMAIL_9> y <RUT_1> quedan."
    assert vault.restore(answer) == (
        "55 1234 5678 y ana@correo.mx; ana@correo.mx otra vez, <EMAIL_9> y <RUT_1> quedan."
    )
    assert len(vault) == 4


def test_vault_never_reuses_a_placeholder_typed_by_the_user() -> None:
    vault = Vault()
    masked = vault.mask("Escribí <EMAIL_1> literal; mi correo es ana@correo.mx")
    assert masked == "Escribí <EMAIL_1> literal; mi correo es <EMAIL_2>"
    assert vault.restore("<EMAIL_1> / <EMAIL_2>") == "<EMAIL_1> / ana@correo.mx"


def _answer_and_vault() -> tuple[Vault, str]:
    vault = Vault()
    vault.mask("CPF 529.982.247-25, email ana@x.com.br, tel +55 11 98765-4321, RUT 76.086.428-5")
    answer = "Listo <EMAIL_1>: <CPF_1><CPF_1> <PHONE_1>, <RUT_1>> <<CPF_1 <EMAIL_10> < fin <RUT_1>"
    return vault, answer


def test_streaming_restore_at_every_chunk_boundary() -> None:
    vault, answer = _answer_and_vault()
    expected = vault.restore(answer)
    for cut in range(len(answer) + 1):
        restorer = vault.restorer()
        out = restorer.feed(answer[:cut]) + restorer.feed(answer[cut:]) + restorer.flush()
        assert out == expected, cut
    restorer = vault.restorer()
    assert "".join(restorer.feed(ch) for ch in answer) + restorer.flush() == expected
    rng = random.Random(3)
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(answer)), 4))
        restorer = StreamingRestorer(vault.placeholders)
        pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
        assert "".join(restorer.feed(p) for p in pieces) + restorer.flush() == expected


def test_streaming_restore_holds_only_a_possible_placeholder() -> None:
    vault, _ = _answer_and_vault()
    restorer = vault.restorer()
    assert restorer.feed("Hola <b>x</b> a<") == "Hola <b>x</b> a"
    assert restorer.feed("CP") == ""
    assert restorer.feed("F_1> y <PH") == "529.982.247-25 y "
    assert restorer.feed("ONE_2> fin") == "<PHONE_2> fin"
    assert restorer.feed("<RUT_") == ""
    assert restorer.flush() == "<RUT_"


# The guard


def test_guard_result() -> None:
    guard: Guard = PIIGuard()
    assert guard.name == "pii"
    result = guard.check("Mi RUT es 76.086.428-5 y mi correo ana@correo.cl")
    assert result.flagged and result.score == 1.0 and result.guard == "pii"
    assert result.reason == "PII: RUT, EMAIL"
    assert [(s.kind, s.detail["validator"]) for s in result.spans] == [
        ("RUT", "rut"),
        ("EMAIL", "email"),
    ]
    clean = guard.check("Nada que ver aquí, versión 1.2.3 del 15/03/2024.")
    assert not clean.flagged and clean.score == 0.0 and clean.spans == [] and clean.reason is None
    assert result.public(reveal=False)["spans"][0]["text"] is None


def test_guard_options() -> None:
    text = "CPF 529.982.247-25, tel +55 11 98765-4321"
    only_phones = PIIGuard({"entities": ["PHONE"], "keywords": None})
    assert [s.kind for s in only_phones.check(text).spans] == ["PHONE"]
    # Disabled kinds still take part in resolution: the CNPJ is not reported as a phone.
    assert only_phones.check("CNPJ 11.222.333/0001-81").spans == []
    for bad in ({"entities": ["SSN"]}, {"entities": "CPF"}, {"keywords": "RG"}, {"mode": 1}):
        with pytest.raises(ConfigError):
            PIIGuard(bad)


# Size and garbage


def test_huge_and_binary_input() -> None:
    rng = random.Random(11)
    block = "Cliente CPF 529.982.247-25, tel (11) 98765-4321, pedido 2024-000123. " * 3
    text = (block + "lorem ipsum dolor sit amet " * 20) * 2000
    assert len(text) > 1_000_000
    result = PIIGuard().check(text)
    assert len(result.spans) == 2000 * 6
    noise = bytes(rng.getrandbits(8) for _ in range(300_000)).decode("latin-1")
    PIIGuard().check(noise)
    for junk in ("1 " * 200_000, "a@" * 200_000, "ab:cd:" * 60_000, "(1)" * 100_000, "\x00" * 10):
        PIIGuard().check(junk)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A negative word does not hide a value written as its kind is written, or one
        # whose kind was named earlier in the sentence.
        (
            "my visa card, code 4111 1111 1111 1111, exp 12/27",
            [("CREDIT_CARD", "4111 1111 1111 1111")],
        ),
        ("Meu CPF (ref) 52998224725", [("CPF", "52998224725")]),
        # An international number written without its "+", after a phone word.
        ("me chama no whatsapp 5511987654321", [("PHONE", "5511987654321")]),
        # Other ways of writing the same values.
        ("card 4111.1111.1111.1111", [("CREDIT_CARD", "4111.1111.1111.1111")]),
        ("iban gb82west12345698765432", [("IBAN", "gb82west12345698765432")]),
    ],
)
def test_values_written_unusually_are_still_found(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text) == expected


def test_an_order_number_that_passes_a_checksum_stays_an_order_number() -> None:
    # Bare, after "pedido"/"ticket", with no keyword of its kind: taken for what the text
    # says it is (the trade-off; written as a card or after "CPF" it is reported).
    assert found("Pedido número 52998224725 enviado") == []
    assert found("ticket 4532015112830366") == []
