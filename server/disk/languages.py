"""The languages Whisper can transcribe, as two-letter ISO 639-1 codes (folder names, settings)."""

import re

# fmt: off
WHISPER_LANGUAGES = frozenset([
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi",
    "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la",
    "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy",
    "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be",
    "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "ln", "ha", "ba", "jw", "su",
])
# fmt: on

# What a language setting may be (DEFAULT_LANGUAGE, a job's `language`): auto, or a two-letter code.
LANGUAGE = re.compile(r"^(auto|[a-z]{2})$")
