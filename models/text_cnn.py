"""Kim's CNN for sentence classification (Kim 2014), over a sequence of word embeddings.

    (embedding=300, length=64) -> conv1d 100@3, 100@4, 100@5 (each + ReLU) -> max over time
                               -> concat 300 -> dropout 0.5 -> fc num_classes

The input is the embedded sentence, channels first (one channel per embedding dimension); the
embedding lookup itself happens before the network. Names follow the common torch port
(convs.0/1/2, fc).
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network
from convc.models.catalog import example_shape, new_network, positive_int, register_model

FILTER_WIDTHS = (3, 4, 5)


def build_text_cnn(name: str, *, num_classes: int = 2, input_size: int | Sequence[int] = 64,
                   embedding: int = 300, maps: int = 100, batch: int = 1, seed: int = 0,
                   dtype: str = "float32") -> Network:
    """`input_size` is the sentence length (or the full (embedding, length))."""
    embedding = positive_int(name, "embedding", embedding)
    maps = positive_int(name, "maps", maps)
    example = example_shape(name, input_size, channels=embedding, spatial_dims=1)
    net, x = new_network(name, batch, example, seed, dtype)
    with net.sequential("convs"):  # only the convs inside: convs.0, convs.1, convs.2
        feature_maps = [net.conv1d(x, maps, width) for width in FILTER_WIDTHS]
    pooled = [net.global_max_pool(net.relu(conv_out, name=f"relu{width}"), name=f"max_over_time{width}")
              for width, conv_out in zip(FILTER_WIDTHS, feature_maps)]
    x = net.flatten(net.concat(pooled, axis=1, name="concat"), name="flatten")
    return net.output(net.linear(net.dropout(x, 0.5, name="dropout"), num_classes, name="fc"))


register_model("text_cnn", "Text CNN (Kim 2014): conv1d widths 3/4/5 x 100 maps, max over time; "
               "300x64 embeddings", build_text_cnn)
