"""Text: fastai's tokenization rules, TextBlock / TextDataLoaders, AWD-LSTM learners, and pretrained transformers."""
