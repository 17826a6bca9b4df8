"""TF-Hub encoder modules: locating them, their vocab, loading and building them."""

from __future__ import annotations

import os

import tensorflow as tf


def resolve_module_dir(uri: str) -> str:
    """The local (or gs://) directory of a Hub module given as URL, directory or gs:// path."""
    if uri.startswith(("http://", "https://")):
        import tensorflow_hub as hub

        return hub.resolve(uri)
    return uri


def module_vocab_path(uri: str) -> str:
    """The module's `assets/vocab.txt`; raises FileNotFoundError naming the module if absent."""
    path = os.path.join(resolve_module_dir(uri), "assets", "vocab.txt")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"The encoder module {uri!r} has no vocab at {path!r}; a BERT/MobileBERT Hub "
            "module ships its WordPiece vocab as assets/vocab.txt"
        )
    return path
