"""Embed a Parquet corpus on Ray Data with fastembed_adapter.ray.Embedder (the README's example).

    python examples/ray_embed.py MODEL_DIR INPUT_PARQUET OUTPUT_DIR [ACTORS]

INPUT_PARQUET has a "text" column; OUTPUT_DIR gets Parquet files with every input column plus "embedding".
On a cluster: ray.init(address="auto"), and paths every node can read (s3://, gs://, NFS).
"""

import sys

import ray
from ray.data import ActorPoolStrategy

from fastembed_adapter.ray import Embedder

model, source, target = sys.argv[1:4]
actors = int(sys.argv[4]) if len(sys.argv) > 4 else 1
ray.init(include_dashboard=False)
ds = ray.data.read_parquet(source)
ds = ds.map_batches(
    Embedder,
    fn_constructor_kwargs={"model": model, "normalize": True},
    compute=ActorPoolStrategy(size=actors),  # actors, each loads the model once
    num_cpus=1,  # CPUs per actor = its ONNX Runtime threads
    batch_size=256,
    batch_format="pyarrow",
)
ds.write_parquet(target)
