"""Deterministic, pronounceable sentences of 5-12 words from small word lists and a grammar.

English ("en") has the largest vocabulary and several templates (statements, questions,
exclamations); German ("de"), Spanish ("es") and French ("fr") use one agreement-safe
template each: [time,] subject verb object [place], with nouns stored with their gender.
"""

import random
from collections.abc import Callable

MIN_WORDS, MAX_WORDS = 5, 12

# English.
_EN_ADJECTIVES = (
    "old", "young", "small", "big", "quiet", "happy", "tired", "clever", "brave", "gentle",
    "busy", "careful", "friendly", "proud", "sleepy", "angry", "famous", "patient", "lucky",
    "curious", "humble", "little", "tall", "calm", "eager", "polite", "strong", "lazy",
)
_EN_ANIMATE = (
    "farmer", "teacher", "doctor", "baker", "sailor", "painter", "student", "driver",
    "musician", "dog", "cat", "horse", "fox", "rabbit", "child", "woman", "man", "girl", "boy",
    "neighbor", "captain", "gardener", "singer", "writer", "soldier", "pilot", "tailor",
    "fisherman", "king", "queen", "nurse", "lawyer", "officer", "monkey", "parrot", "owl",
)
_EN_OBJECT_ADJECTIVES = (
    "red", "blue", "green", "yellow", "heavy", "empty", "broken", "shiny", "wooden", "golden",
    "warm", "cold", "dusty", "strange", "secret", "tiny", "huge", "round", "soft", "dark",
    "bright", "clean", "fresh", "simple", "plain", "expensive", "ancient", "open",
)
_EN_OBJECTS = (
    "basket", "letter", "window", "bottle", "garden", "bicycle", "blanket", "candle",
    "picture", "mirror", "ladder", "bucket", "kettle", "lantern", "wagon", "map", "book",
    "box", "chair", "table", "door", "boat", "coat", "hat", "key", "lamp", "cup", "bell",
    "drum", "rope", "stone", "shell", "apple", "orange", "umbrella", "envelope", "clock",
    "piano", "pillow", "jacket", "ticket", "violin", "hammer", "feather", "carpet",
)
_EN_VERBS_PAST = (
    "carried", "painted", "opened", "found", "watched", "cleaned", "dropped", "followed",
    "noticed", "repaired", "lifted", "pulled", "pushed", "bought", "sold", "hid", "kept",
    "brought", "built", "broke", "touched", "washed", "wanted", "showed", "borrowed",
    "delivered", "described", "moved", "remembered", "visited",
)
_EN_VERBS_BASE = (
    "carry", "paint", "open", "find", "watch", "clean", "drop", "follow", "notice", "repair",
    "lift", "pull", "push", "buy", "sell", "hide", "keep", "bring", "build", "break", "touch",
    "wash", "want", "show", "borrow", "deliver", "describe", "move", "remember", "visit",
)
_EN_ADVERBS = (
    "slowly", "quickly", "quietly", "carefully", "suddenly", "gladly", "finally", "gently",
    "nearly", "often", "never", "always", "proudly", "secretly", "easily", "barely",
)
_EN_PREPOSITIONS = (
    "near", "behind", "under", "beside", "across", "inside", "around", "past", "toward",
    "beyond", "along", "above",
)
_EN_PLACES = (
    "river", "bridge", "market", "station", "church", "mountain", "forest", "village",
    "harbor", "castle", "kitchen", "library", "school", "meadow", "tower", "fountain",
    "bakery", "garden", "lake", "road", "hill", "wall", "fence", "gate", "farm", "beach",
)
_EN_TIMES = (
    "yesterday", "last night", "this morning", "on Sunday", "in the evening", "at noon",
    "before dinner", "after the storm", "last winter", "at dawn", "on Monday", "today",
)
_EN_DETERMINERS = ("the", "a", "the", "that", "this", "my", "our", "her", "his", "their")
_EN_NAMES = (
    "Anna", "Peter", "Maria", "David", "Laura", "Thomas", "Emma", "Daniel", "Sarah", "Robert",
    "Linda", "Oliver", "Grace", "Henry", "Alice", "Simon", "Helen", "Victor", "Rosa", "Martin",
)


def _en_noun_phrase(rng: random.Random, nouns: tuple, adjectives: tuple, p_adj: float) -> str:
  determiner = rng.choice(_EN_DETERMINERS)
  words = [rng.choice(adjectives)] if rng.random() < p_adj else []
  words.append(rng.choice(nouns))
  if determiner == "a" and words[0][0] in "aeiou":
    determiner = "an"
  return " ".join([determiner, *words])


def _en_place(rng: random.Random) -> str:
  return f"{rng.choice(_EN_PREPOSITIONS)} the {rng.choice(_EN_PLACES)}"


def _english(rng: random.Random) -> str:
  subject = _en_noun_phrase(rng, _EN_ANIMATE, _EN_ADJECTIVES, 0.7)
  obj = _en_noun_phrase(rng, _EN_OBJECTS, _EN_OBJECT_ADJECTIVES, 0.6)
  kind = rng.random()
  if kind < 0.55:  # Statement, with optional adverb, place and time.
    adverb = rng.choice(_EN_ADVERBS) + " " if rng.random() < 0.4 else ""
    words = f"{subject} {adverb}{rng.choice(_EN_VERBS_PAST)} {obj}"
    if rng.random() < 0.6:
      words += " " + _en_place(rng)
    if rng.random() < 0.35:
      time = rng.choice(_EN_TIMES)
      words = f"{time}, {words}" if rng.random() < 0.5 else f"{words} {time}"
    return words + "."
  if kind < 0.7:  # Question.
    start = rng.choice(("Why did", "When did", "Did", "Where did", "How did"))
    place = " " + _en_place(rng) if rng.random() < 0.5 else ""
    return f"{start} {subject} {rng.choice(_EN_VERBS_BASE)} {obj}{place}?"
  if kind < 0.85:  # Reported speech.
    return (f"{rng.choice(_EN_NAMES)} said that {subject} {rng.choice(_EN_VERBS_PAST)} "
            f"{obj}.")
  # Imperative or exclamation.
  if rng.random() < 0.5:
    return f"Please {rng.choice(_EN_VERBS_BASE)} {obj} {_en_place(rng)}."
  return f"{rng.choice(_EN_NAMES)}, {rng.choice(_EN_VERBS_BASE)} {obj} {_en_place(rng)}!"


# German: (gender, noun); "der/die/das" + adjective-e in the nominative, "den" + adjective-en
# (masculine) or "die/das" + adjective-e in the accusative.
_DE_ANIMATE = (
    ("m", "Mann"), ("m", "Hund"), ("m", "Lehrer"), ("m", "Bäcker"), ("m", "Vogel"),
    ("m", "Koch"), ("m", "Bauer"), ("m", "Nachbar"), ("m", "Maler"), ("m", "Fischer"),
    ("f", "Frau"), ("f", "Katze"), ("f", "Lehrerin"), ("f", "Ärztin"), ("f", "Nachbarin"),
    ("f", "Oma"), ("n", "Kind"), ("n", "Mädchen"), ("n", "Pferd"), ("n", "Schaf"),
)
_DE_OBJECTS = (
    ("m", "Brief"), ("m", "Tisch"), ("m", "Apfel"), ("m", "Hut"), ("m", "Ball"),
    ("m", "Schlüssel"), ("m", "Korb"), ("m", "Stuhl"), ("m", "Mantel"), ("m", "Kuchen"),
    ("f", "Tasche"), ("f", "Lampe"), ("f", "Zeitung"), ("f", "Tür"), ("f", "Kiste"),
    ("f", "Uhr"), ("f", "Blume"), ("f", "Flasche"), ("n", "Buch"), ("n", "Haus"),
    ("n", "Bild"), ("n", "Brot"), ("n", "Glas"), ("n", "Boot"), ("n", "Fahrrad"),
)
_DE_ANIMATE_ADJECTIVES = (
    "alt", "jung", "klein", "groß", "müde", "stark", "freundlich", "fröhlich", "klug",
    "ruhig", "fleißig", "neugierig",
)
_DE_OBJECT_ADJECTIVES = (
    "rot", "blau", "grün", "alt", "neu", "klein", "groß", "schwer", "leicht", "schön",
    "warm", "kalt", "leer", "hell",
)
_DE_VERBS = (
    "sieht", "sucht", "findet", "trägt", "malt", "kauft", "hält", "bringt", "öffnet", "holt",
    "putzt", "verkauft", "zeigt", "nimmt", "braucht", "versteckt",
)
_DE_ADVERBS = ("heute", "oft", "langsam", "schnell", "wieder", "leise", "gern", "sofort")
_DE_PLACES = (
    "im Garten", "in der Stadt", "am See", "auf dem Markt", "im Wald", "am Fenster",
    "in der Küche", "vor dem Haus", "auf der Straße", "im Dorf", "an der Brücke", "im Park",
)
_DE_TIMES = ("Am Morgen", "Heute", "Am Abend", "Jeden Tag", "Im Winter", "Am Sonntag")
_DE_ARTICLES = {
    "nom": {"m": "der", "f": "die", "n": "das"}, "acc": {"m": "den", "f": "die", "n": "das"},
}


def _de_noun_phrase(rng: random.Random, nouns: tuple, adjectives: tuple, case: str) -> str:
  gender, noun = rng.choice(nouns)
  article = _DE_ARTICLES[case][gender]
  if rng.random() < 0.7:
    ending = "en" if (case, gender) == ("acc", "m") else "e"
    return f"{article} {rng.choice(adjectives)}{ending} {noun}"
  return f"{article} {noun}"


def _german(rng: random.Random) -> str:
  subject = _de_noun_phrase(rng, _DE_ANIMATE, _DE_ANIMATE_ADJECTIVES, "nom")
  obj = _de_noun_phrase(rng, _DE_OBJECTS, _DE_OBJECT_ADJECTIVES, "acc")
  verb = rng.choice(_DE_VERBS)
  place = " " + rng.choice(_DE_PLACES) if rng.random() < 0.6 else ""
  if rng.random() < 0.3:  # Verb second: time, verb, subject.
    return f"{rng.choice(_DE_TIMES)} {verb} {subject} {obj}{place}."
  adverb = " " + rng.choice(_DE_ADVERBS) if rng.random() < 0.4 else ""
  return f"{subject[0].upper()}{subject[1:]} {verb}{adverb} {obj}{place}."


# Spanish: (gender, noun); adjectives after the noun, "-o" adjectives agree as "-a".
_ES_ANIMATE = (
    ("m", "perro"), ("m", "niño"), ("m", "hombre"), ("m", "maestro"), ("m", "gato"),
    ("m", "abuelo"), ("m", "médico"), ("m", "vecino"), ("m", "pintor"), ("m", "panadero"),
    ("f", "niña"), ("f", "mujer"), ("f", "maestra"), ("f", "abuela"), ("f", "vecina"),
    ("f", "doctora"), ("f", "señora"), ("f", "cocinera"),
)
_ES_OBJECTS = (
    ("m", "libro"), ("m", "coche"), ("m", "vaso"), ("m", "sombrero"), ("m", "regalo"),
    ("m", "pan"), ("m", "cuaderno"), ("m", "espejo"), ("m", "paraguas"), ("m", "barco"),
    ("f", "casa"), ("f", "mesa"), ("f", "puerta"), ("f", "ventana"), ("f", "carta"),
    ("f", "caja"), ("f", "manzana"), ("f", "silla"), ("f", "botella"), ("f", "lámpara"),
)
_ES_ANIMATE_ADJECTIVES = (
    "pequeño", "viejo", "alto", "tranquilo", "cansado", "simpático", "contento", "alegre",
    "amable", "fuerte", "curioso", "valiente",
)
_ES_OBJECT_ADJECTIVES = (
    "rojo", "nuevo", "blanco", "viejo", "grande", "verde", "pesado", "bonito", "azul",
    "limpio", "negro", "antiguo",
)
_ES_VERBS = (
    "mira", "busca", "lleva", "compra", "abre", "pinta", "encuentra", "tiene", "vende",
    "limpia", "guarda", "prepara", "cierra", "trae",
)
_ES_PLACES = (
    "en el parque", "en la cocina", "cerca del río", "en la plaza", "en el mercado",
    "en la calle", "junto al puente", "en el jardín", "en la escuela", "en el pueblo",
)
_ES_TIMES = ("Por la mañana", "Hoy", "Cada día", "Por la tarde", "Ahora", "Los domingos")


def _es_noun_phrase(rng: random.Random, nouns: tuple, adjectives: tuple) -> str:
  gender, noun = rng.choice(nouns)
  article = "el" if gender == "m" else "la"
  if rng.random() < 0.7:
    adjective = rng.choice(adjectives)
    if gender == "f" and adjective.endswith("o"):
      adjective = adjective[:-1] + "a"
    return f"{article} {noun} {adjective}"
  return f"{article} {noun}"


def _spanish(rng: random.Random) -> str:
  subject = _es_noun_phrase(rng, _ES_ANIMATE, _ES_ANIMATE_ADJECTIVES)
  obj = _es_noun_phrase(rng, _ES_OBJECTS, _ES_OBJECT_ADJECTIVES)
  place = " " + rng.choice(_ES_PLACES) if rng.random() < 0.6 else ""
  sentence = f"{subject} {rng.choice(_ES_VERBS)} {obj}{place}"
  if rng.random() < 0.3:
    return f"{rng.choice(_ES_TIMES)}, {sentence}."
  return f"{sentence[0].upper()}{sentence[1:]}."


# French: (gender, noun) starting with a consonant (no elision); adjectives after the noun
# and ending in "-e" (same form in both genders).
_FR_ANIMATE = (
    ("m", "chien"), ("m", "garçon"), ("m", "chat"), ("m", "boulanger"), ("m", "voisin"),
    ("m", "pêcheur"), ("m", "facteur"), ("m", "peintre"), ("m", "médecin"), ("m", "cheval"),
    ("f", "fille"), ("f", "femme"), ("f", "voisine"), ("f", "dame"), ("f", "fermière"),
    ("f", "chanteuse"), ("f", "boulangère"),
)
_FR_OBJECTS = (
    ("m", "livre"), ("m", "panier"), ("m", "chapeau"), ("m", "gâteau"), ("m", "bateau"),
    ("m", "vélo"), ("m", "journal"), ("m", "sac"), ("m", "miroir"), ("m", "manteau"),
    ("f", "maison"), ("f", "table"), ("f", "porte"), ("f", "lettre"), ("f", "fenêtre"),
    ("f", "boîte"), ("f", "pomme"), ("f", "fleur"), ("f", "lampe"), ("f", "chaise"),
)
_FR_ANIMATE_ADJECTIVES = ("calme", "triste", "aimable", "drôle", "sage", "rapide", "célèbre")
_FR_OBJECT_ADJECTIVES = (
    "rouge", "jaune", "rose", "vide", "propre", "énorme", "magnifique", "moderne", "fragile",
    "bizarre",
)
_FR_VERBS = (
    "regarde", "cherche", "porte", "trouve", "achète", "ouvre", "lave", "dessine", "prend",
    "vend", "garde", "montre", "cache", "répare",
)
_FR_PLACES = (
    "dans le jardin", "près de la rivière", "dans la cuisine", "sur la place", "au marché",
    "dans le parc", "devant la maison", "dans la rue", "au village", "sur le pont",
)
_FR_TIMES = ("Ce matin", "Aujourd'hui", "Le soir", "Chaque jour", "Dimanche", "Souvent")


def _fr_noun_phrase(rng: random.Random, nouns: tuple, adjectives: tuple) -> str:
  gender, noun = rng.choice(nouns)
  article = "le" if gender == "m" else "la"
  if rng.random() < 0.7:
    return f"{article} {noun} {rng.choice(adjectives)}"
  return f"{article} {noun}"


def _french(rng: random.Random) -> str:
  subject = _fr_noun_phrase(rng, _FR_ANIMATE, _FR_ANIMATE_ADJECTIVES)
  obj = _fr_noun_phrase(rng, _FR_OBJECTS, _FR_OBJECT_ADJECTIVES)
  place = " " + rng.choice(_FR_PLACES) if rng.random() < 0.6 else ""
  sentence = f"{subject} {rng.choice(_FR_VERBS)} {obj}{place}"
  if rng.random() < 0.3:
    return f"{rng.choice(_FR_TIMES)}, {sentence}."
  return f"{sentence[0].upper()}{sentence[1:]}."


_GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "en": _english, "de": _german, "es": _spanish, "fr": _french,
}
LANGUAGES = tuple(_GENERATORS)


def num_words(sentence: str) -> int:
  """Number of whitespace-separated words."""
  return len(sentence.split())


def generate(language: str, count: int, seed: int) -> list[str]:
  """`count` distinct sentences of MIN_WORDS..MAX_WORDS words in `language` ("en", "de", ...).

  Deterministic in (language, count, seed); a prefix of a longer list with the same seed.
  """
  if language not in _GENERATORS:
    raise ValueError(f"no sentence grammar for language {language!r}; known: {LANGUAGES}")
  generate = _GENERATORS[language]
  rng = random.Random(f"sentences:{language}:{seed}")
  result, seen = [], set()
  for _ in range(100 * count + 1000):
    if len(result) == count:
      return result
    sentence = generate(rng)
    sentence = sentence[0].upper() + sentence[1:]
    if MIN_WORDS <= num_words(sentence) <= MAX_WORDS and sentence not in seen:
      seen.add(sentence)
      result.append(sentence)
  raise ValueError(f"could not generate {count} distinct {language!r} sentences")
