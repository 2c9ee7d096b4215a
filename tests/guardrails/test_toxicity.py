"""ToxicityGuard: categories and severities per language, obfuscation, look-alikes, offsets."""

from __future__ import annotations

import json
import random
import time
from importlib import resources
from typing import Any

import pytest

from genaiops.guardrails.base import Span
from genaiops.guardrails.toxicity import (
    CATEGORIES,
    ToxicityGuard,
    build_lexicon,
    load_lexicon,
)


@pytest.fixture(scope="module")
def guard() -> ToxicityGuard:
    return ToxicityGuard()


def _raw_lexicon() -> dict[str, Any]:
    path = resources.files("genaiops.guardrails.data").joinpath("toxicity.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _only(spans: list[Span]) -> Span:
    assert len(spans) == 1, [(s.kind, s.text, s.detail) for s in spans]
    return spans[0]


def _check_offsets(text: str, spans: list[Span]) -> None:
    for span in spans:
        assert 0 <= span.start < span.end <= len(text)
        assert text[span.start : span.end] == span.text


SEVERITIES = ["low", "medium", "high"]

# (text, category, severity, language, matched text)
POSITIVES = [
    # insult
    ("You are such an idiot.", "insult", "low", "en", "idiot"),
    ("shut up, asshole", "insult", "medium", "en", "asshole"),
    ("what a stupid cunt", "insult", "high", "en", "cunt"),
    ("fuck you", "insult", "medium", "en", "fuck you"),
    ("eres un pendejo", "insult", "medium", "es", "pendejo"),
    ("qué boludo que sos", "insult", "low", "es", "boludo"),
    ("sos un pelotudo", "insult", "medium", "es", "pelotudo"),
    ("gilipollas, que eres un gilipollas", "insult", "medium", "es", "gilipollas"),
    ("malparido", "insult", "high", "es", "malparido"),
    ("hijo de puta", "insult", "high", "es", "hijo de puta"),
    ("la concha de tu madre", "insult", "high", "es", "la concha de tu madre"),
    ("vete a la mierda", "insult", "medium", "es", "vete a la mierda"),
    ("seu otário", "insult", "medium", "pt", "seu otário"),
    ("que otário", "insult", "low", "pt", "otário"),
    ("esse cara é um babaca", "insult", "medium", "pt", "babaca"),
    ("filho da puta", "insult", "high", "pt", "filho da puta"),
    ("vai tomar no cu", "insult", "medium", "pt", "vai tomar no cu"),
    ("arrombado do caralho", "insult", "low", "pt", "arrombado"),
    # hate
    ("fucking faggot", "hate", "high", "en", "fucking faggot"),
    ("you faggot", "hate", "high", "en", "faggot"),
    ("he is a retard", "hate", "medium", "en", "he is a retard"),
    ("Jews are vermin", "hate", "high", "en", "Jews are vermin"),
    ("go back to your country", "hate", "medium", "en", "go back to your country"),
    ("maricón", "hate", "medium", "es", "maricón"),
    ("sudaca", "hate", "high", "es", "sudaca"),
    ("negro de mierda", "hate", "high", "es", "negro de mierda"),
    ("los inmigrantes son ratas", "hate", "high", "es", "los inmigrantes son ratas"),
    ("sai daqui, viado", "hate", "medium", "pt", "viado"),
    ("seu macaco", "hate", "high", "pt", "seu macaco"),
    ("nordestino de merda", "hate", "high", "pt", "nordestino de merda"),
    # threat
    ("I will kill you", "threat", "high", "en", "I will kill you"),
    ("i'm gonna stab you", "threat", "high", "en", "i'm gonna stab you"),
    ("I'll break your legs", "threat", "medium", "en", "I'll break your legs"),
    ("I know where you live", "threat", "medium", "en", "I know where you live"),
    ("watch your back", "threat", "low", "en", "watch your back"),
    ("go kill yourself", "threat", "high", "en", "go kill yourself"),
    ("te voy a matar", "threat", "high", "es", "te voy a matar"),
    ("voy a matarte", "threat", "high", "es", "voy a matarte"),
    ("te voy a partir la madre", "threat", "medium", "es", "te voy a partir la madre"),
    ("sé dónde vives", "threat", "medium", "es", "sé dónde vives"),
    ("me las vas a pagar", "threat", "low", "es", "me las vas a pagar"),
    ("vou te matar", "threat", "high", "pt", "vou te matar"),
    ("vou matar você", "threat", "high", "pt", "vou matar você"),
    ("vou te encher de porrada", "threat", "medium", "pt", "vou te encher de porrada"),
    ("você vai morrer", "threat", "medium", "pt", "você vai morrer"),
    ("te pego lá fora", "threat", "low", "pt", "te pego lá fora"),
    # sexual
    ("send me nudes", "sexual", "medium", "en", "send me nudes"),
    ("suck my dick", "sexual", "high", "en", "suck my dick"),
    ("watching porn", "sexual", "low", "en", "porn"),
    ("chúpame la verga", "sexual", "high", "es", "chúpame la verga"),
    ("quiero follarte", "sexual", "medium", "es", "quiero follarte"),
    ("mostra a buceta", "sexual", "medium", "pt", "buceta"),
    ("vou te comer todinha", "sexual", "high", "pt", "vou te comer"),
]


@pytest.mark.parametrize(("text", "category", "severity", "lang", "matched"), POSITIVES)
def test_positives(
    guard: ToxicityGuard, text: str, category: str, severity: str, lang: str, matched: str
) -> None:
    result = guard.check(text)
    assert result.flagged
    span = next(s for s in result.spans if s.kind == category)
    assert span.text == matched
    assert span.detail["severity"] == severity
    assert lang in span.detail["lang"].split("+")
    assert set(span.detail) >= {"severity", "lang", "term"}
    worst = max((s.detail["severity"] for s in result.spans), key=SEVERITIES.index)
    assert result.score == {"low": 0.4, "medium": 0.7, "high": 1.0}[worst]
    _check_offsets(text, result.spans)


def test_every_lexicon_example_matches_its_pattern(guard: ToxicityGuard) -> None:
    for phrase in _raw_lexicon()["phrases"]:
        for example in phrase["examples"]:
            found = [s.detail.get("pattern") for s in guard.find(example)]
            assert phrase["id"] in found, (phrase["id"], example, found)
        for counter in phrase.get("not", []):
            found = [s.detail.get("pattern") for s in guard.find(counter)]
            assert phrase["id"] not in found, (phrase["id"], counter)


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("1d10t4", "idiota"),  # leetspeak
        ("idiotaaaaaa", "idiota"),  # repeated letters
        ("IDIOOOOTA!!!", "idiota"),
        ("p u t a", "puta"),  # spaced letters
        ("p.e.n.d.e.j.o", "pendejo"),
        ("b-i-t-c-h", "bitch"),
        ("pendéjo", "pendejo"),  # accents added or removed
        ("maricon", "maricon"),
        ("id\u200biota", "idiota"),  # zero-width space
        ("іdіоt", "idiot"),  # Cyrillic look-alikes
        ("ɪᴅɪᴏᴛᴀ", "idiota"),  # small capitals
        ("a$$hole", "asshole"),
        ("f*cker", "fucker"),  # masked
        ("sh*thead", "shithead"),
        ("ＩＤＩＯＴ", "idiot"),  # full-width
    ],
)
def test_obfuscated_words(guard: ToxicityGuard, text: str, term: str) -> None:
    span = _only(guard.find(text))
    assert span.detail["term"] == term
    assert (span.start, span.end) == (0, len(text.rstrip("!")))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("Te VoY a MaTaAaAaR", "es.threat.kill"),
        ("t3 v0y 4 m4t4r", "es.threat.kill"),
        ("te voy a matar!!!", "es.threat.kill"),
        ("vou te mataaaar", "pt.threat.kill"),
        ("vou matar-te", "pt.threat.kill"),
        ("vô te matá", "pt.threat.kill"),
        ("I'll kiiill youuu", "en.threat.kill"),
        ("ill k1ll u", "en.threat.kill"),
        ("I will k i l l you", "en.threat.kill"),
        ("hijo de p*ta", "es.insult.severe"),
        ("filha da put@", "pt.insult.severe"),
    ],
)
def test_obfuscated_phrases(guard: ToxicityGuard, text: str, pattern: str) -> None:
    span = _only(guard.find(text))
    assert span.detail["pattern"] == pattern
    _check_offsets(text, [span])


@pytest.mark.parametrize(
    "text",
    [
        "Mi perra tuvo cachorros ayer, ¿cada cuánto les doy de comer?",
        "La zorra y las uvas es una fábula de Esopo.",
        "Las babosas se están comiendo mis lechugas.",
        "Compra tarugos de 8 mm para fijar el estante.",
        "El capullo de seda lo produce el gusano.",
        "Los ladrones hicieron un boquete en la pared del banco.",
        "La polla mundialista de la oficina cierra el viernes.",
        "Vendo Mitsubishi Pajero 2015 diésel, único dueño.",
        "La policía dispersó a los manifestantes con la porra.",
        "Dulce de mamón con queso, receta paraguaya.",
        "El toro cornudo embistió al torero.",
        "Autoexploración de las mamas y las tetas durante la lactancia.",
        "As piranhas do rio Amazonas são carnívoras.",
        "Use bosta de vaca curtida como adubo na horta.",
        "Samsung Galaxy A55 com 256 GB está em promoção.",
        "Moby Dick is a novel by Herman Melville.",
        "Blue tits and great tits visit my bird feeder every morning.",
        "The ball valve replaced the old stop cock in the basement.",
        "The pussy willow blooms in early spring.",
        "Retard the ignition timing by two degrees to stop the knocking.",
        "Offa's Dyke runs along the border between England and Wales.",
    ],
)
def test_words_with_innocent_senses_need_a_target(guard: ToxicityGuard, text: str) -> None:
    assert guard.find(text) == []


@pytest.mark.parametrize(
    "text",
    ["eres una perra", "maldita zorra", "pinche tarugo", "sos un pajero", "you dick",
     "she is such a pussy", "you retard", "chúpame la polla", "sua piranha"],
)  # fmt: skip
def test_the_same_words_said_of_someone_are_found(guard: ToxicityGuard, text: str) -> None:
    assert guard.find(text)


def test_doubled_letters_must_stay_doubled(guard: ToxicityGuard) -> None:
    # "guarra" squeezes to "guara": the double r is required.
    assert guard.find("la guara roja") == []
    assert _only(guard.find("guarra")).detail["term"] == "guarra"
    assert _only(guard.find("guarrrraaaa")).detail["term"] == "guarra"
    assert guard.find("as far as I know") == []
    assert _only(guard.find("kiss my ass")).detail["pattern"] == "en.insult.directed"


BENIGN = [
    # Scunthorpe: lexicon words inside longer words
    "The class will assess the Essex office in Scunthorpe.",
    "Revisa las cuentas en el computador de la oficina.",
    "O computador disputa espaço com a cocktail table; the therapist is an assassin fan.",
    "Passei o ano inteiro no Arsenal; el año pasado fue mejor.",
    "Shiitake, Matterhorn, Penistone, cockpit, analyst, grape, pussycat.",
    # medical and sex education
    "Use a condom during vaginal, anal or oral sex to lower the risk of STIs.",
    "Breast cancer screening and testicular self-exams save lives.",
    "El pene y la vagina son órganos reproductores; la masturbación es normal.",
    "La gonorrea es una infección de transmisión sexual que se trata con antibióticos.",
    "A educação sexual explica o que é pênis, vagina, orgasmo e masturbação.",
    "O escroto protege os testículos.",
    # idioms with violent verbs but no victim
    "Vamos a matar el tiempo mientras esperamos.",
    "Run kill -9 to kill the process, then kill the container.",
    "This song is sick, you killed it!",
    "I'll shoot you an email tomorrow.",
    "I'll beat you at chess next time.",
    "Te voy a matar a besos cuando llegues.",
    "Vou te matar de saudade.",
    "Estoy muerto de cansancio.",
    "Você vai morrer de rir com esse filme.",
    "Mi mamá me va a matar si llego tarde.",
    "El vestido negro es bonito y el burro come pasto.",
    "O macaco comeu a banana.",
    "Te voy a coger el teléfono.",
    "Homo sapiens evolved in Africa.",
    # senses that kept words out of the lexicon
    "El imperio mongol y la estepa mongola; subnormal floating-point numbers.",
    "Comprimido de liberação retardada; a parte lesada recorreu; dançamos forró.",
    "A finger prick test; a vaginal douche is not recommended.",
    "Voy a cogerte en la estación a las ocho.",
    "",
    "   \n\t ",
    "12345 67890 3.14159 $100 @user",
]


@pytest.mark.parametrize("text", BENIGN)
def test_benign_look_alikes(guard: ToxicityGuard, text: str) -> None:
    result = guard.check(text)
    assert result.spans == [], [(s.kind, s.text) for s in result.spans]
    assert not result.flagged
    assert result.score == 0.0
    assert result.reason is None


def test_expletive_is_low_not_an_insult_to_anyone(guard: ToxicityGuard) -> None:
    # Decision: undirected profanity is reported as a low insult. The default threshold
    # (0.4, any finding) flags it; a policy that only wants abuse uses 0.7.
    text = "puta madre qué buen gol"
    span = _only(guard.find(text))
    assert (span.kind, span.text, span.detail["severity"]) == ("insult", "puta madre", "low")
    assert guard.check(text).flagged
    assert not ToxicityGuard({"threshold": 0.7}).check(text).flagged
    # The same word directed at someone is medium.
    assert _only(guard.find("eres una puta")).detail["severity"] == "medium"
    assert _only(guard.find("que puta jogo!")).detail["severity"] == "low"


def test_negation_lowers_severity(guard: ToxicityGuard) -> None:
    span = _only(guard.find("no eres un idiota"))
    assert span.detail["severity"] == "low"  # still flagged: a known limitation
    assert span.detail["negated"] is True
    span = _only(guard.find("you're not an asshole"))
    assert (span.detail["severity"], span.detail["negated"]) == ("low", True)
    span = _only(guard.find("no te voy a matar, tranquilo"))
    assert (span.kind, span.detail["severity"]) == ("threat", "low")
    span = _only(guard.find("don't kill yourself over it"))
    assert (span.kind, span.detail["severity"]) == ("threat", "low")
    assert "negated" not in _only(guard.find("te voy a matar")).detail


def test_mixed_language_text(guard: ToxicityGuard) -> None:
    text = "You're such a pendejo, te voy a matar, filho da puta. I will kill you, idiot!"
    result = guard.check(text)
    _check_offsets(text, result.spans)
    found = [(s.kind, s.text, s.detail["severity"]) for s in result.spans]
    assert found == [
        ("insult", "pendejo", "medium"),
        ("threat", "te voy a matar", "high"),
        ("insult", "filho da puta", "high"),
        ("threat", "I will kill you", "high"),
        ("insult", "idiot", "low"),
    ]
    langs = [s.detail["lang"] for s in result.spans]
    assert langs[1:4] == ["es", "pt", "en"]
    assert result.score == 1.0
    assert result.reason == "threat (high, es); insult (high, pt)"


def test_offsets_map_back_through_folding(guard: ToxicityGuard) -> None:
    # Characters that fold to several (ß, ligatures), to none (combining marks, zero-width)
    # and astral ones (emoji) before and inside the match.
    text = "Straße ﬁne 😀 e\u0301 \u200b idi\u0301ota and IDIÓTA, 💩 hijo de puta"
    result = guard.check(text)
    _check_offsets(text, result.spans)
    assert [s.text for s in result.spans] == ["idi\u0301ota", "IDIÓTA", "hijo de puta"]
    start = text.index("hijo")
    assert (result.spans[-1].start, result.spans[-1].end) == (start, start + len("hijo de puta"))


def test_options(guard: ToxicityGuard) -> None:
    text = "idiota, te voy a matar"
    assert guard.check(text).flagged
    only_insults = ToxicityGuard({"categories": ["insult"]}).check(text)
    assert [s.kind for s in only_insults.spans] == ["insult"]
    assert only_insults.score == 0.4
    strict = ToxicityGuard({"threshold": 1.0})
    assert strict.check(text).flagged
    assert not strict.check("idiota").flagged
    assert strict.check("idiota").spans  # spans are reported even when not flagged
    assert ToxicityGuard({}).threshold == 0.4
    assert set(ToxicityGuard(None).categories) == set(CATEGORIES)


@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0},
        {"threshold": 1.5},
        {"threshold": "high"},
        {"threshold": True},
        {"categories": ["insult", "spam"]},
        {"categories": []},
        {"categories": "insult"},
        {"severity": "high"},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ToxicityGuard(options)


def test_result_shape(guard: ToxicityGuard) -> None:
    result = guard.check("vou te matar")
    assert result.guard == guard.name == "toxicity"
    assert result.latency_ms >= 0
    public = result.public(reveal=False)
    assert public["spans"][0]["text"] is None
    assert public["spans"][0]["kind"] == "threat"
    assert public["spans"][0]["detail"]["severity"] == "high"
    assert result.reason == "threat (high, pt)"


def test_huge_input(guard: ToxicityGuard) -> None:
    chunk = "Texto normal sobre cuentas y computadores. Plain text, nothing here. "
    text = chunk * (1_000_000 // len(chunk)) + "te voy a matar"
    started = time.perf_counter()
    result = guard.check(text)
    elapsed = time.perf_counter() - started
    print(f"\n1 MB benign + 1 threat: {elapsed * 1000:.0f} ms")
    assert [s.text for s in result.spans] == ["te voy a matar"]
    assert result.spans[0].end == len(text)
    toxic = "idiota te voy a matar hijo de puta " * 30_000  # ~1 MB of nothing but abuse
    started = time.perf_counter()
    result = guard.check(toxic)
    print(f"1 MB abuse: {(time.perf_counter() - started) * 1000:.0f} ms, {len(result.spans)} spans")
    assert len(result.spans) == 90_000
    _check_offsets(toxic, result.spans[:50] + result.spans[-50:])


def test_binary_input(guard: ToxicityGuard) -> None:
    data = random.Random(7).randbytes(200_000)
    for text in (
        data.decode("latin-1"),
        data.decode("utf-8", errors="surrogateescape"),
        data.decode("utf-8", errors="replace"),
        "\x00" * 1000 + "idiota" + "\x00\ufffe\U0010ffff",
    ):
        result = guard.check(text)
        _check_offsets(text, result.spans)
    assert [s.text for s in result.spans] == ["idiota"]


def test_typical_latency(guard: ToxicityGuard) -> None:
    base = (
        "The team met to review the quarterly numbers and the roadmap for next year. "
        "El equipo revisó las cuentas del trimestre y los planes para el próximo año. "
        "A equipe revisou o computador novo e os planos para o próximo trimestre. "
    )
    text = (base * 20)[:2000]
    for _ in range(20):
        guard.check(text)
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        guard.check(text)
        timings.append(time.perf_counter() - started)
    timings.sort()
    print(f"\n2,000 chars: median {timings[100] * 1000:.3f} ms, p95 {timings[190] * 1000:.3f} ms")


def lexicon_size() -> dict[str, dict[str, int]]:
    """Word forms per language and category, and phrase patterns per language."""
    sizes: dict[str, dict[str, int]] = {lang: {} for lang in ("en", "es", "pt")}
    lexicon = load_lexicon()
    for entries in lexicon.words.values():
        for *_, entry in entries:
            for lang in entry.lang.split("+"):
                sizes[lang][entry.category] = sizes[lang].get(entry.category, 0) + 1
    for phrase in lexicon.phrases:
        bucket = sizes[phrase.entry.lang]
        bucket["phrases"] = bucket.get("phrases", 0) + 1
        key = f"phrases.{phrase.entry.category}"
        bucket[key] = bucket.get(key, 0) + 1
    return sizes


def test_lexicon_size_and_validation() -> None:
    sizes = lexicon_size()
    print(f"\nlexicon: {sizes}")
    for lang in ("en", "es", "pt"):
        assert sizes[lang]["phrases"] >= 10
        for category in ("insult", "hate", "sexual"):
            assert sizes[lang][category] >= 10
    raw = _raw_lexicon()
    build_lexicon(raw)
    broken_word = json.loads(json.dumps(raw))
    broken_word["words"]["en"]["insult"]["low"].append("two words")
    with pytest.raises(ValueError):
        build_lexicon(broken_word)
    broken_category = json.loads(json.dumps(raw))
    broken_category["phrases"][0]["category"] = "spam"
    with pytest.raises(ValueError):
        build_lexicon(broken_category)
    broken_def = json.loads(json.dumps(raw))
    broken_def["phrases"][0]["pattern"] = ["<<NOPE>> you"]
    with pytest.raises((ValueError, KeyError)):
        build_lexicon(broken_def)


# Ordinary business text from customers in Latin America that uses the words of a threat,
# a slur or an insult in another sense. None may reach medium: the abuse-only policy (0.7)
# would block a real customer's message.
BUSINESS = [
    # es: IT runbooks, support, HR, logistics, veterinary, hardware
    "Una vez aprobados los scripts, vamos a ejecutarlos en producción el lunes.",
    "Vamos a ejecutarlos uno por uno: primero el de clientes y luego el de facturas.",
    "Las órdenes de compra llegaron, vamos a ejecutarlas mañana.",
    "Los procesos colgados: vamos a matarlos con kill -9 y reiniciar el servicio.",
    "Si no vienen, te vamos a dar de baja el contrato.",
    "Si no pagas la cuota, te vamos a dar de baja del servicio.",
    "Te voy a pegar aquí el log del servidor para que lo revises.",
    "Voy a pegarte el enlace del formulario abajo.",
    "Quiero coger vacaciones la segunda quincena de agosto.",
    "Mañana te voy a coger cita con el dermatólogo.",
    "Si tu visa vence, regresa a tu país antes del 30 de junio.",
    "Los que se vayan a su país de origen en vacaciones deben avisar a RR.HH.",
    "Ya te mandé la factura, ¿cuándo me la vas a pagar?",
    "La factura vence hoy, ¿me la vas a pagar con tarjeta o en efectivo?",
    "No te vas a arrepentir de elegir este proveedor.",
    "La paciente es una perra labrador de 6 años con otitis.",
    "El anclaje es un tarugo de nylon de 8 mm.",
    "Cada rosa del ramo es un capullo recién cortado.",
    "Las mujeres recibieron salarios que son inferiores a los de los hombres.",
    "Los indios del norte cultivan maíz; las langostas son una plaga en la región.",
    "Los venezolanos que contratamos son ingenieros muy capaces.",
    "Ojalá se mueran las plagas con este fungicida.",
    "Me dan ganas de matar el tiempo leyendo mientras espero el vuelo.",
    "A los proveedores les voy a pedir la factura corregida.",
    "Hay que dar de baja el usuario del exempleado hoy.",
    # pt: pets, waste, agriculture, batteries, billing, HR, statistics, nursing
    "Leve seu animal de estimação ao veterinário uma vez por ano.",
    "Descarte seu lixo eletrônico nos pontos de coleta autorizados.",
    "Separe seu lixo orgânico do reciclável.",
    "Vacine seu animal anualmente contra a raiva.",
    "Seu lixo é coletado às terças e sextas.",
    "Aperte sua porca com torque de 40 Nm.",
    "A bateria morre logo depois de carregar, já troquei o carregador.",
    "Sem irrigação, a muda morre logo nas primeiras semanas.",
    "O celular morre logo que abro o aplicativo.",
    "O funcionário que volta para o seu país deve devolver o crachá.",
    "Você vai me pagar à vista ou parcelado?",
    "Quando você vai me pagar a fatura de março?",
    "Ninguém vai se arrepender de investir em treinamento.",
    "Você não vai se arrepender de escolher nosso plano.",
    "Vendemos corno inglês e oboé usados, em ótimo estado.",
    "Registre o horário de cada mamada do bebê.",
    "A mamada noturna deve durar cerca de 15 minutos.",
    "Vou te encontrar na saída do metrô às 18h.",
    "Vou matar essa reunião e mandar um e-mail no lugar.",
    "Vou matar o gerente de susto com esse resultado!",
    "Te dou um retorno até sexta-feira sobre o orçamento.",
    "Os nordestinos são maioria no quadro de funcionários da filial.",
    "Os indígenas da região plantam mandioca; as formigas são uma praga nas lavouras.",
    # en: support, logistics, engines, facilities
    "I'll shoot you an update by Friday.",
    "We'll shoot you the invoice tomorrow.",
    "I'll shoot you guys the slides after the meeting.",
    "Defective units go back to Mexico for repair.",
    "Once your visa expires, you must go back to your country before the deadline.",
    "The ignition timing is retarded by 4 degrees.",
    "Growth was retarded in the control group.",
    "Once you're done for the day, log off.",
    "Please pick up every piece of trash before leaving.",
    "A piece of trash is stuck in the intake filter.",
    "I'll beat you to the meeting room.",
    "We will find you qualified candidates within two weeks.",
    "Will you pay for this in one installment or three?",
]


@pytest.mark.parametrize("text", BUSINESS)
def test_business_text_in_another_sense_is_not_abuse(guard: ToxicityGuard, text: str) -> None:
    assert guard.find(text) == [], [(s.kind, s.text, s.detail) for s in guard.find(text)]


@pytest.mark.parametrize(
    "text",
    [
        "A FDP da distribuição normal é simétrica em torno da média.",  # density function
        "Our HDP cluster runs on 12 nodes.",  # Hadoop platform
        "El reporte de HDP muestra 3 nodos caídos.",
    ],
)
def test_ambiguous_acronyms_stay_low(guard: ToxicityGuard, text: str) -> None:
    span = _only(guard.find(text))
    assert span.detail["severity"] == "low"
    assert not ToxicityGuard({"threshold": 0.7}).check(text).flagged


# (text, category, severity, pattern): abuse from support chats that was missed.
ABUSE = [
    ("eu vou aí e te meto a porrada", "threat", "medium", "pt.threat.beat"),
    ("vou matar esse atendente se ele me deixar esperando", "threat", "high", "pt.threat.kill"),
    ("vou te encontrar na saída e você vai ver", "threat", "low", "pt.threat.intimidate"),
    ("os nordestinos são todos preguiçosos e burros", "hate", "medium", "pt.hate.stereotype"),
    ("esses haitianos deviam ir embora, são uma praga", "hate", "high", "pt.hate.group"),
    (
        "si no me devuelven el dinero los voy a buscar y les voy a partir la madre",
        "threat",
        "medium",
        "es.threat.beat",
    ),
    ("me dan ganas de matarlos a todos los de soporte", "threat", "medium", "es.threat.wish"),
    ("ojala se mueran todos en esa oficina", "threat", "medium", "es.threat.wish"),
    ("los venezolanos son todos unos ladrones", "hate", "medium", "es.hate.stereotype"),
    ("esos bolivianos deberian irse de aqui, son una plaga", "hate", "high", "es.hate.group"),
    ("mujeres no deberían ser gerentes, son inferiores", "hate", "high", "es.hate.inferior"),
    ("vete a tu país", "hate", "medium", "es.hate.go_home"),
    ("volta pro teu país", "hate", "medium", "pt.hate.go_home"),
    ("you're so retarded", "hate", "medium", "en.hate.ambiguous_slur"),
    ("I'll shoot you", "threat", "high", "en.threat.kill"),
    ("seu lixo de atendente", "insult", "medium", "pt.insult.directed"),
    ("morre logo", "threat", "medium", "pt.threat.wish"),
]


@pytest.mark.parametrize(("text", "category", "severity", "pattern"), ABUSE)
def test_abuse_from_support_chats(
    guard: ToxicityGuard, text: str, category: str, severity: str, pattern: str
) -> None:
    span = next(s for s in guard.find(text) if s.detail.get("pattern") == pattern)
    assert (span.kind, span.detail["severity"]) == (category, severity)


def test_long_tokens_are_not_kept_in_the_unmasking_cache() -> None:
    """Only a short masked token can be a word ("p*ta"); a long one is never looked up,
    so caller text (which may hold personal data) is not kept in memory between checks."""
    from genaiops.guardrails import toxicity

    guard = ToxicityGuard()
    guard.check("warm up p*ta")
    before = toxicity._unmask.cache_info().currsize
    for i in range(50):
        guard.check(f"id{i}*" + "x" * 80 + "*yz and more text")
    assert toxicity._unmask.cache_info().currsize == before
    assert guard.check("eres una p*ta").flagged
