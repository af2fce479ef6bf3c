"""Tiny random-weight keras-hub CLIP and SigLIP presets, built with keras-hub's own classes and
`save_to_preset`: what the tests load where a real preset (downloaded from Kaggle) cannot be."""

import io

import keras_hub

WORDS = ("a picture of there is an image showing just the red green blue yellow purple orange circle square "
         "triangle star small large left right above below shape").split()
IMAGE_SIZE = 32
NORMALISATION = {"mean": (0.48, 0.46, 0.41), "std": (0.27, 0.26, 0.28)}  # CLIP's, rounded


def _clip_tokenizer():
    """A byte-pair vocabulary that spells every word in `WORDS` from its letters."""
    vocabulary, merges = {}, []
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocabulary[letter] = len(vocabulary)
        vocabulary[letter + "</w>"] = len(vocabulary)
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merge = f"{parts[0]} {parts[1]}"
            if merge not in merges:
                merges.append(merge)
            parts = [parts[0] + parts[1]] + parts[2:]
            vocabulary.setdefault(parts[0], len(vocabulary))
    vocabulary["<|startoftext|>"] = len(vocabulary)
    vocabulary["<|endoftext|>"] = len(vocabulary)  # the highest id: CLIP pools where argmax(token_ids) is
    return keras_hub.tokenizers.CLIPTokenizer(vocabulary=vocabulary, merges=merges)


def _siglip_tokenizer():
    import sentencepiece

    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]), model_writer=proto,
        vocab_size=48, model_type="unigram", minloglevel=2, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>",
        eos_piece="</s>", unk_piece="<unk>", user_defined_symbols=[])
    return keras_hub.tokenizers.SigLIPTokenizer(proto=proto.getvalue())


def _converter(cls):
    mean, std = NORMALISATION["mean"], NORMALISATION["std"]
    return cls(image_size=(IMAGE_SIZE, IMAGE_SIZE), scale=[1 / (255 * s) for s in std],
               offset=[-m / s for m, s in zip(mean, std)])


def save_tiny_clip(path, sequence_length=16, seed=0):
    """A tiny CLIP preset at `path` (backbone, tokenizer, image converter, preprocessor); returns `path`."""
    import keras

    keras.utils.set_random_seed(seed)
    tokenizer = _clip_tokenizer()
    vision = keras_hub.models.CLIPVisionEncoder(patch_size=8, hidden_dim=32, num_layers=2, num_heads=2,
                                                intermediate_dim=64, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    text = keras_hub.models.CLIPTextEncoder(vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=32, hidden_dim=32,
                                            num_layers=2, num_heads=2, intermediate_dim=64,
                                            max_sequence_length=sequence_length)
    keras_hub.models.CLIPBackbone(vision, text, projection_dim=16).save_to_preset(str(path))
    keras_hub.models.CLIPPreprocessor(tokenizer, _converter(keras_hub.layers.CLIPImageConverter),
                                      sequence_length=sequence_length).save_to_preset(str(path))
    return path


def save_tiny_siglip(path, sequence_length=12, seed=0):
    """A tiny SigLIP preset at `path`; returns `path`."""
    import keras

    keras.utils.set_random_seed(seed)
    tokenizer = _siglip_tokenizer()
    vision = keras_hub.models.SigLIPVisionEncoder(patch_size=8, hidden_dim=32, num_layers=2, num_heads=2,
                                                  intermediate_dim=64, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    text = keras_hub.models.SigLIPTextEncoder(vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=32,
                                              hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64,
                                              max_sequence_length=sequence_length)
    keras_hub.models.SigLIPBackbone(vision, text).save_to_preset(str(path))
    keras_hub.models.SigLIPPreprocessor(tokenizer, _converter(keras_hub.layers.SigLIPImageConverter),
                                        sequence_length=sequence_length).save_to_preset(str(path))
    return path


def _byte_characters():
    """GPT-2's byte-level alphabet: each of the 256 bytes as a printable character."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters, extra = {}, 0
    for byte in range(256):
        if byte in kept:
            characters[byte] = chr(byte)
        else:
            characters[byte] = chr(256 + extra)
            extra += 1
    return characters


def _gpt2_tokenizer(words):
    """A byte-level BPE that spells every word of `words` (with and without its leading space) in one token and
    anything else byte by byte."""
    space = _byte_characters()[ord(" ")]
    vocabulary = {"<|endoftext|>": 0}
    for character in _byte_characters().values():
        vocabulary.setdefault(character, len(vocabulary))
    merges = []
    for word in sorted(set(words)):
        for spelt in (word, space + word):
            parts = list(spelt)
            while len(parts) > 1:
                merge = f"{parts[0]} {parts[1]}"
                if merge not in merges:
                    merges.append(merge)
                parts = [parts[0] + parts[1]] + parts[2:]
                vocabulary.setdefault(parts[0], len(vocabulary))
    return keras_hub.tokenizers.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)


def _gemma_tokenizer(words):
    import sentencepiece

    proto = io.BytesIO()
    words = sorted(set(words))
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(words[i:] + words[:i]) for i in range(len(words))]), model_writer=proto,
        vocab_size=len(words) + 300, model_type="unigram", minloglevel=2, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", byte_fallback=True,
        hard_vocab_limit=False)
    return keras_hub.tokenizers.GemmaTokenizer(proto=proto.getvalue())


def save_tiny_causal_lm(path, family, words, seed=0):
    """A tiny random GPT-2 or Gemma causal-LM preset at `path` (backbone and a tokenizer that knows `words`),
    as `keras_hub.models.CausalLM.from_preset` reads one; returns `path`."""
    import keras

    keras.utils.set_random_seed(seed)
    if family == "gpt2":
        tokenizer = _gpt2_tokenizer(words)
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2,
                                                 hidden_dim=32, intermediate_dim=64, max_sequence_length=128)
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=32)
        task = keras_hub.models.GPT2CausalLM(backbone, preprocessor)
    else:
        tokenizer = _gemma_tokenizer(words)
        backbone = keras_hub.models.GemmaBackbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2,
                                                  num_query_heads=2, num_key_value_heads=1, hidden_dim=32,
                                                  intermediate_dim=64, head_dim=16)
        preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(tokenizer, sequence_length=32)
        task = keras_hub.models.GemmaCausalLM(backbone, preprocessor)
    task.save_to_preset(str(path))
    return path
