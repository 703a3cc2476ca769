"""Text models: AWD-LSTM and the language-model / classifier wrappers around it."""
