"""Emoji text-to-image dataset built from the ``emoji-datasource-*`` npm packages.

The packages published by iamcal (https://github.com/iamcal/emoji-data) ship 64x64
PNGs for every emoji of one vendor plus an ``emoji.json`` with names, short names,
categories and skin-tone variants.  :func:`build_emoji_dataset` fetches them with
``npm pack`` (cached), composites the transparent images onto a solid background,
writes natural-language captions (:func:`captions_for`) and lays the result out as
a Hugging Face ``imagefolder`` with a ``train`` and a held-out ``test`` split::

    out_dir/train/metadata.jsonl      {"file_name": "google/1f600.png", "text": [...], ...}
    out_dir/train/google/1f600.png
    out_dir/test/metadata.jsonl + images
    out_dir/SOURCES.md                packages, versions, licences, attribution
    out_dir/build.json                build parameters + counts

Optionally, keywords from the ``emojilib`` npm package (MIT) enrich the captions, and
each image's drawn colour adds one (``"a yellow grinning face"``, :func:`dominant_colour`).

The held-out split is by *concept*: every vendor and every skin tone of a base emoji
lands in the same split (and bases that share a byte-identical image, or that are
linked by ``obsoletes``/``obsoleted_by``, are grouped together), so no test concept
is ever seen in training.

One module per job: ``sources`` (the npm packages and their licences), ``sets`` (the SVG sets), ``captions``,
``split`` and ``build``. Command line: ``t2igan data emoji`` (all five sets into ``data/emoji-v2``).
"""
from .build import EmojiBuildReport, build_emoji_dataset
from .captions import captions_for, dominant_colour, skin_tone_words
from .sources import ALL_SOURCES, EMOJI_SOURCES, EMOJILIB_SOURCE, SKIN_TONES, EmojiBuildError
from .split import split_of

__all__ = ["ALL_SOURCES", "EMOJI_SOURCES", "EMOJILIB_SOURCE", "SKIN_TONES", "EmojiBuildError", "EmojiBuildReport",
           "build_emoji_dataset", "captions_for", "dominant_colour", "skin_tone_words", "split_of"]
