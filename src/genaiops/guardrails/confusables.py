"""Letters that Unicode normalisation keeps apart from the Latin letters they imitate.

NFKC folds compatibility forms (full-width, mathematical bold, circled letters) but not
look-alikes from other scripts (Cyrillic "а", Greek "ο") nor the small capitals of the
phonetic blocks ("ɪɢɴᴏʀᴇ"), which text generators offer as a "font". Every guard that
folds text maps these first, so one table decides what counts as the same letter.
"""

HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ո": "n", "ս": "u",
    # Latin letters outside the basic alphabet
    "ɡ": "g", "ɑ": "a", "ı": "i",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s",
    "ζ": "z",
    # Small capitals (IPA and phonetic extensions); "ǫ" stands for q in such "fonts".
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ǫ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y",
    "ᴢ": "z",
}  # fmt: skip
