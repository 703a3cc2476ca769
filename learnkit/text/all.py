"""The text lesson surface: ``from learnkit.text.all import *`` (basics plus texts, AWD-LSTM and text learners)."""
from __future__ import annotations

from learnkit.basics import *  # noqa: F401,F403  (all.py files re-export; this is the one place star imports live)
from learnkit.basics import __all__ as _basics_all

from learnkit.text.core import (UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ, text_spec_tok, text_proc_rules, text_postproc_rules, spec_add_spaces, rm_useless_spaces, replace_rep, replace_wrep, fix_html, replace_all_caps, replace_maj, lowercase, replace_space, BaseTokenizer, WordTokenizer, RegexTokenizer, tokenize1, parallel_tokenize, tokenize_texts, Tokenizer, make_vocab, Numericalize, TextEncoder, decode_spec_tokens, defaults)  # noqa: F401
from learnkit.text.rules_tokenize import (TokenizeWithRules, tokenize_df)  # noqa: F401
from learnkit.text.padding import (reverse_text, pad_input, pad_chunk, pad_input_chunk)  # noqa: F401
from learnkit.text.subword import (SentencePieceTokenizer, SubwordTokenizer)  # noqa: F401
from learnkit.text.data import (TextBlock, TextDataLoaders)  # noqa: F401
from learnkit.text.loaders import (LMDataLoader, SortedTextDL, pad_batch)  # noqa: F401
from learnkit.text.sorted_dl import (SortedDL)  # noqa: F401
from learnkit.text.models.awdlstm import (dropout_mask, RNNDropout, WeightDropout, EmbeddingDropout, AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config, awd_lstm_lm_split, awd_lstm_clas_split)  # noqa: F401
from learnkit.text.models.core import (LinearDecoder, SequentialRNN, SentenceEncoder, masked_concat_pool, PoolingLinearClassifier, get_language_model, get_text_classifier)  # noqa: F401
from learnkit.text.learner import (TextLearner, LMLearner, ModelResetter, RNNCallback, RNNRegularizer, rnn_cbs, language_model_learner, text_classifier_learner, match_embeds, load_pretrained_lm)  # noqa: F401
from learnkit.text.transformer import (TransformerTextEncoder, TransformerClassifier, transformer_classifier_learner)  # noqa: F401

__all__ = _basics_all + [
    "UNK", "PAD", "BOS", "EOS", "FLD", "TK_REP", "TK_WREP", "TK_UP", "TK_MAJ", "text_spec_tok", "text_proc_rules",
    "text_postproc_rules", "spec_add_spaces", "rm_useless_spaces", "replace_rep", "replace_wrep", "fix_html",
    "replace_all_caps", "replace_maj", "lowercase", "replace_space", "BaseTokenizer", "WordTokenizer",
    "RegexTokenizer", "tokenize1", "parallel_tokenize", "tokenize_texts", "Tokenizer", "make_vocab", "Numericalize",
    "TextEncoder", "decode_spec_tokens", "defaults", "SentencePieceTokenizer", "SubwordTokenizer", "TextBlock", "LMDataLoader", "SortedTextDL", "SortedDL", "TextDataLoaders", "pad_batch", "dropout_mask",
    "RNNDropout", "WeightDropout", "EmbeddingDropout", "AWD_LSTM", "awd_lstm_lm_config", "awd_lstm_clas_config",
    "awd_lstm_lm_split", "awd_lstm_clas_split", "LinearDecoder", "SequentialRNN", "SentenceEncoder",
    "masked_concat_pool", "PoolingLinearClassifier", "get_language_model", "get_text_classifier", "TextLearner",
    "LMLearner", "ModelResetter", "RNNCallback", "RNNRegularizer", "rnn_cbs", "language_model_learner", "text_classifier_learner",
    "match_embeds", "load_pretrained_lm", "TransformerTextEncoder", "TransformerClassifier",
    "transformer_classifier_learner", "TokenizeWithRules", "tokenize_df", "reverse_text", "pad_input", "pad_chunk",
    "pad_input_chunk",
]
