"""The layers people use: the specification cells, torch.nn-compatible LSTM/GRU/RNN, gate tracing."""
