"""Make tests/data/train_golden.npz: the seed article's training run in PyTorch.

    python tests/data/make_train_golden.py        # needs torch (pip install torch)

The article's model (torch.manual_seed(0); nn.GRU(1, 50, batch_first=True) + nn.Linear(50, 1)
on the last step) and data (windows of 10 of sin(2 pi i / 1000), the first 70% for training),
trained full batch with MSE and Adam lr=0.01 for 50 epochs, written as its code reads, in
float32 and (from the same initial weights) float64. Saved: the initial weights under
``init/<torch name>`` (float32), and the per-epoch losses ``losses_float32``, ``losses_float64``
(each the loss of the forward pass before that epoch's step, as the article prints).
tests/test_train_parity.py imports ``article_data`` and ``train_torch`` from here to run the
same comparison live when torch is installed.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "train_golden.npz")
EPOCHS = 50


def article_data():
    """trainX (692, 10, 1), trainY (692, 1), testX, testY: float64, as the article builds them."""
    timesteps = 1000
    sin_wave = np.array([np.sin(2 * np.pi * i / timesteps) for i in range(timesteps)])

    def create_dataset(data, time_step=1):
        dataX, dataY = [], []
        for i in range(len(data) - time_step - 1):
            dataX.append(data[i:(i + time_step)])
            dataY.append(data[i + time_step])
        return np.array(dataX), np.array(dataY)

    time_step = 10
    X, y = create_dataset(sin_wave, time_step)
    X = X.reshape(X.shape[0], time_step, 1)
    y = y.reshape(-1, 1)
    train_size = int(len(X) * 0.7)
    return X[:train_size], y[:train_size], X[train_size:], y[train_size:]


def initial_state():
    """{torch name: float32 array}: the article's model's weights after torch.manual_seed(0)."""
    import torch

    torch.manual_seed(0)
    gru = torch.nn.GRU(1, 50, batch_first=True)
    fc = torch.nn.Linear(50, 1)
    state = {f"gru.{k}": t.detach().numpy().copy() for k, t in gru.state_dict().items()}
    state.update({f"fc.{k}": t.detach().numpy().copy() for k, t in fc.state_dict().items()})
    return state


def train_torch(dtype, init, epochs=EPOCHS):
    """Per-epoch losses (float64 array) of the article's loop in torch, from weights ``init``."""
    import torch
    import torch.nn as nn

    tdt = {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]

    class GRUModel(nn.Module):
        def __init__(self, input_size, hidden_size, output_size):
            super().__init__()
            self.hidden_size = hidden_size
            self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
            self.fc = nn.Linear(hidden_size, output_size)

        def forward(self, x):
            h0 = torch.zeros(1, x.size(0), self.hidden_size, dtype=x.dtype)
            out, _ = self.gru(x, h0)
            return self.fc(out[:, -1, :])

    trainX, trainY, _, _ = article_data()
    trainX = torch.tensor(trainX, dtype=tdt)
    trainY = torch.tensor(trainY, dtype=tdt)
    model = GRUModel(1, 50, 1).to(tdt)
    model.load_state_dict({k: torch.tensor(v, dtype=tdt) for k, v in init.items()})
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        loss = criterion(model(trainX), trainY)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses)


def main():
    import torch

    torch.set_num_threads(1)   # a reproducible summation order
    init = initial_state()
    arrays = {f"init/{k}": v for k, v in init.items()}
    arrays["losses_float32"] = train_torch("float32", init)
    arrays["losses_float64"] = train_torch("float64", init)
    arrays["torch_version"] = np.array(torch.__version__)
    np.savez(GOLDEN, **arrays)
    print(f"wrote {GOLDEN}: torch {torch.__version__}, final losses "
          f"{arrays['losses_float32'][-1]:.6g} (float32), {arrays['losses_float64'][-1]:.6g} (float64)")


if __name__ == "__main__":
    main()
