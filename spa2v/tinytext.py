"""A tiny real CLIP tokenizer built in memory, for random-weight test models.

No tokenizer files can be downloaded, so the tiny presets (the diffusion sampler's text
encoder, the open-vocabulary detector's text tower) share this one: a real
``transformers.CLIPTokenizer`` whose byte-pair vocabulary is built so that every
sound-class name of :mod:`spa2v.classes` and the common caption words are single tokens.
Other ASCII words split into sub-tokens; characters outside printable ASCII are unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from spa2v.classes import GENERIC, SOUND_CLASSES

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_TOKENS = 77
"""Prompt length in tokens, as CLIP's."""



_CAPTION_WORDS = """
a an the and or with while of on in at to from into onto over under near by its is are
it they this that there here one two three some
left right center centre middle front back behind frame scene video camera view shot
moving moves move moving away closer coming goes passes past across toward towards
slowly quickly fast slow loud quiet quietly heard sound sounds playing plays
enters leaves appears stands sits walks runs drives rides flies hovers rolls rumbles
idles wails barks meows sings speaks approaches nothing visible
street road city park field forest garden room indoor indoors outdoor stage sky
nature grass tree trees house building wall floor table day night sunny cloudy
red blue green yellow white black small large big little old new
"""


def _vocabulary_words() -> list[str]:
    """The words the tiny tokenizer knows as single tokens."""
    text = [_CAPTION_WORDS]
    for cls in (*SOUND_CLASSES, GENERIC):
        text += [cls.name, *cls.synonyms, cls.verb_static, cls.verb_moving, cls.background]
    words = re.findall(r"[a-z]+", " ".join(text).lower())
    return sorted(set(words))


def _bpe(word: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encode one pre-split word (list of symbols) with merge ``ranks``."""
    symbols = list(word)
    while len(symbols) > 1:
        pairs = [(ranks.get(p, 1 << 30), i)
                 for i, p in enumerate(zip(symbols[:-1], symbols[1:], strict=True))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def tiny_vocabulary(
    words: Iterable[str] | None = None,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style BPE vocabulary and merge list in which each of ``words`` is one token.

    The base symbols are the printable ASCII characters, each also in its end-of-word
    form (``"a</w>"``). For each word, merges are added (lowest priority last) until the
    word encodes to a single symbol; merges added later never change how an earlier word
    encodes, since byte-pair encoding always applies the highest-priority merge first.

    Returns
    -------
    vocab : dict
        Token -> id; ``<|startoftext|>`` and ``<|endoftext|>`` are the last two ids.
    merges : list of (str, str)
        Merge pairs in priority order.
    """
    words = _vocabulary_words() if words is None else list(words)
    base = [chr(c) for c in range(33, 127)]
    tokens = base + [b + "</w>" for b in base]
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts := _bpe(symbols, ranks)) > 1:
            pair = (parts[0], parts[1])
            ranks[pair] = len(ranks)
            tokens.append(pair[0] + pair[1])
    vocab: dict[str, int] = {}
    for tok in tokens:
        vocab.setdefault(tok, len(vocab))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    merges = [pair for pair, _ in sorted(ranks.items(), key=lambda kv: kv[1])]
    return vocab, merges


def tiny_tokenizer():
    """A real ``transformers.CLIPTokenizer`` over :func:`tiny_vocabulary`."""
    from transformers import CLIPTokenizer

    vocab, merges = tiny_vocabulary()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)
