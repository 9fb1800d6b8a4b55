"""Word lists for the constraint-prompt generator (:mod:`tulu.data.ifeval_prompts`), all written for it.

Base instructions and yes/no questions take a topic ``{t}``; they contain no commas so that "repeat the
request" can be combined with "no commas". Foreign-language texts are short and topic-free.
"""

from __future__ import annotations

# Topics and fact templates shared with the SFT/preference generator (tulu.data.synthetic).
TOPICS = [
    "the water cycle", "honey bees", "the history of tea", "volcanoes", "learning a new language",
    "city gardens", "the moon", "bicycles", "rainforests", "public libraries", "the human heart",
    "chess", "coral reefs", "solar power", "bread baking", "the printing press", "owls", "glaciers",
    "recycling", "the Olympic games", "lighthouses", "desert plants", "jazz music", "paper making",
]
FACTS = [
    "{T} has shaped daily life in ways that are easy to overlook.",
    "Many people first learn about {t} at school.",
    "Scientists and hobbyists alike still study {t} today.",
    "A simple way to understand {t} is to look at a small example.",
    "{T} connects to other topics such as weather, history and health.",
    "Learning about {t} rewards curiosity and patience.",
    "Small details about {t} often surprise newcomers.",
    "Books and museums are good places to explore {t}.",
]
EXTRA_TOPICS = [
    "the first day at a new job",
    "a rainy weekend",
    "street food",
    "a small mountain village",
    "comets",
    "the invention of the telephone",
    "wind turbines",
    "a school science fair",
    "penguins",
    "clocks",
    "saving money",
    "board games",
    "the night sky",
    "a long train journey",
    "home-made pasta",
    "the postal service",
    "camping",
    "octopuses",
    "a local football club",
    "maps",
    "autumn leaves",
    "a neighbourhood market",
    "birdwatching",
    "old photographs",
    "sleep",
    "tides",
    "kites",
]
ALL_TOPICS = TOPICS + EXTRA_TOPICS

# Base instructions written for this generator; {t} is the topic. No commas, so "repeat the request"
# stays checkable next to "no commas".
BASES = [
    "Write a short blog post about {t}.",
    "Write a letter to a friend about {t}.",
    "Write a short story that involves {t}.",
    "Describe {t} to someone who has never heard of it.",
    "Write a product description for a book about {t}.",
    "Explain {t} to a ten year old.",
    "Write a short speech for a school assembly about {t}.",
    "Give some advice to a beginner interested in {t}.",
    "Write a diary entry about a day spent learning about {t}.",
    "Write a short poem about {t}.",
    "Summarize what most people should know about {t}.",
    "Write an email inviting colleagues to a talk on {t}.",
    "Write a museum placard about {t}.",
    "Write a news brief about a new exhibition on {t}.",
    "Write a review of a documentary about {t}.",
    "Write a tweet-length pitch for a podcast about {t}.",
    "Write a short dialogue between two friends discussing {t}.",
    "Write a travel guide entry about {t}.",
    "Compare {t} today with {t} a hundred years ago.",
    "Write a riddle whose answer is {t}.",
    "Write the opening of a lecture about {t}.",
    "Write a short encyclopedia entry on {t}.",
    "Write a note for a class newsletter about {t}.",
    "List some surprising facts about {t}.",
    "Write a motivational message for a club devoted to {t}.",
    "Write a job advertisement for an expert on {t}.",
    "Describe a perfect afternoon that involves {t}.",
    "Write a thank-you note to a teacher who taught you about {t}.",
    "Write an FAQ answer explaining {t}.",
    "Write a short essay on why {t} matters.",
    "Pitch a children's book about {t}.",
    "Write a limerick about {t}.",
]
YES_NO_BASES = [
    "Is {t} worth learning about?",
    "Would a ten year old enjoy a lesson on {t}?",
    "Is {t} more interesting than most people think?",
    "Should every school teach something about {t}?",
    "Can a beginner understand {t} in one afternoon?",
    "Is {t} important for the future?",
    "Would you recommend a weekend trip devoted to {t}?",
    "Is it easy to explain {t} without pictures?",
]
MORE_FACTS = [
    "There is always more to discover about {t}.",
    "Even experts keep finding new questions about {t}.",
    "People around the world talk about {t} in different ways.",
    "A good teacher can make {t} exciting.",
    "Some of the best stories start with {t}.",
    "It is fun to share what you know about {t}.",
    "Reading about {t} can fill a quiet evening.",
    "Children often ask clever questions about {t}.",
]
SENTENCES = FACTS + MORE_FACTS
# Short texts for the response-language constraint, written for this generator (topic-free).
FOREIGN = {
    "fr": (
        "French",
        [
            "Ce sujet est vraiment passionnant pour tout le monde.",
            "Beaucoup de gens aiment en apprendre davantage chaque jour.",
            "Il y a toujours quelque chose de nouveau à découvrir.",
            "Les enfants posent souvent des questions très intéressantes.",
            "On peut en parler pendant des heures avec des amis.",
        ],
    ),
    "es": (
        "Spanish",
        [
            "Este tema es muy interesante para todas las personas.",
            "Mucha gente quiere aprender algo nuevo cada día.",
            "Siempre hay algo diferente que descubrir.",
            "Los niños hacen preguntas muy curiosas sobre esto.",
            "Podemos hablar de esto durante horas con nuestros amigos.",
        ],
    ),
    "de": (
        "German",
        [
            "Dieses Thema ist für viele Menschen sehr spannend.",
            "Man kann jeden Tag etwas Neues darüber lernen.",
            "Es gibt immer noch viel zu entdecken.",
            "Kinder stellen dazu oft sehr kluge Fragen.",
            "Wir können stundenlang mit Freunden darüber sprechen.",
        ],
    ),
    "it": (
        "Italian",
        [
            "Questo argomento è molto interessante per tutti.",
            "Molte persone vogliono imparare qualcosa di nuovo ogni giorno.",
            "C'è sempre qualcosa di diverso da scoprire.",
            "I bambini fanno spesso domande molto curiose.",
            "Possiamo parlarne per ore con i nostri amici.",
        ],
    ),
    "pt": (
        "Portuguese",
        [
            "Este assunto é muito interessante para todas as pessoas.",
            "Muita gente quer aprender algo novo todos os dias.",
            "Sempre existe algo diferente para descobrir.",
            "As crianças fazem perguntas muito curiosas sobre isso.",
            "Podemos conversar sobre isso durante horas com os amigos.",
        ],
    ),
}
KEYWORDS = [
    "history",
    "future",
    "community",
    "balance",
    "curiosity",
    "patience",
    "journey",
    "detail",
    "surprise",
    "tradition",
    "energy",
    "season",
    "memory",
    "craft",
    "habit",
    "question",
    "garden",
    "river",
    "lantern",
    "compass",
    "harvest",
    "signal",
    "pattern",
    "window",
]
FORBIDDEN = [
    "very",
    "really",
    "thing",
    "stuff",
    "nice",
    "basically",
    "actually",
    "literally",
    "awesome",
    "amazing",
    "just",
    "simply",
    "obviously",
    "totally",
]
OPENERS = [
    "however",
    "meanwhile",
    "finally",
    "overall",
    "today",
    "first",
    "still",
    "besides",
    "indeed",
    "next",
    "sometimes",
    "later",
]
PLACEHOLDERS = ["[name]", "[address]", "[date]", "[city]", "[phone number]", "[school]", "[time]", "[email]"]
CAPS = ["NOTE", "KEY", "ALWAYS", "NEVER", "VITAL", "TRULY", "NOW", "BEST", "MUST", "REAL"]
END_PHRASES = [
    "Thank you for reading.",
    "That is all for today.",
    "I hope this helps.",
    "Have a wonderful day.",
    "See you next time.",
    "Any other questions?",
]
SPLITTERS = ["Section", "SECTION", "Part", "PART", "Chapter"]
HIGHLIGHTS = [
    "the main idea",
    "a key detail",
    "an important point",
    "the best part",
    "a useful tip",
    "the big question",
]
