"""Make tests/data/keras_gru_*.npz: real Keras GRU layers' weights, inputs and outputs.

Run from the repository root (needs Keras 3 and a backend; torch is the one used here):

    KERAS_BACKEND=torch python tests/data/make_keras_golden.py

Each file holds, in float32: ``w{k}_{i}``, the i-th array of layer k's ``get_weights()``
(kernel, recurrent_kernel, bias; forward then backward for Bidirectional); ``x`` (B, T, I);
``h0`` and ``h_n`` in fastgru's layout (L*D, B, H); ``out`` (B, T, D*H); for the
one-layer files also ``cell_h``, one keras.layers.GRUCell step from (x[:, 0], h0[0]).
Every weight and bias is drawn non-zero at random (Keras initialises biases to zero,
which would hide a bias mistake), with both halves of a (2, 3H) bias different.
"""
import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

B, T, I, H = 3, 6, 4, 5
HERE = os.path.dirname(os.path.abspath(__file__))


def randomise(layer, rng):
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
                       for w in layer.get_weights()])


def numpy_of(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float32)


def one_layer(reset_after, rng):
    layer = keras.layers.GRU(H, reset_after=reset_after, return_sequences=True,
                             return_state=True)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    layer(x)   # build
    randomise(layer, rng)
    out, h_n = layer(x, initial_state=[h0])
    cell = keras.layers.GRUCell(H, reset_after=reset_after)
    cell(x[:, 0], [h0])   # build
    cell.set_weights(layer.get_weights())
    cell_h, _ = cell(x[:, 0], [h0])
    data = {f"w0_{i}": w for i, w in enumerate(layer.get_weights())}
    data.update(x=x, h0=h0[None], out=numpy_of(out), h_n=numpy_of(h_n)[None],
                cell_h=numpy_of(cell_h))
    return data


def stacked_bidirectional(reset_after, rng):
    layers = [keras.layers.Bidirectional(
        keras.layers.GRU(H, reset_after=reset_after, return_sequences=True, return_state=True))
        for _ in range(2)]
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    h0 = rng.standard_normal((4, B, H)).astype(np.float32)   # l0 fw, l0 bw, l1 fw, l1 bw
    data, layer_in, h_n = {}, x, []
    for k, layer in enumerate(layers):
        layer(layer_in)   # build
        randomise(layer, rng)
        out, h_fw, h_bw = layer(layer_in, initial_state=[h0[2 * k], h0[2 * k + 1]])
        data.update({f"w{k}_{i}": w for i, w in enumerate(layer.get_weights())})
        layer_in = numpy_of(out)
        h_n += [numpy_of(h_fw), numpy_of(h_bw)]
    data.update(x=x, h0=h0, out=layer_in, h_n=np.stack(h_n))
    return data


def main():
    rng = np.random.default_rng(20240611)
    made = {"keras_gru_after.npz": one_layer(True, rng),
            "keras_gru_before.npz": one_layer(False, rng),
            "keras_gru_bidir2_after.npz": stacked_bidirectional(True, rng),
            "keras_gru_bidir2_before.npz": stacked_bidirectional(False, rng)}
    about = f"keras {keras.__version__}, backend {keras.backend.backend()}"
    for name, data in made.items():
        np.savez(os.path.join(HERE, name), made_by=np.array(about), **data)
        print(name, about, file=sys.stderr)


if __name__ == "__main__":
    main()
