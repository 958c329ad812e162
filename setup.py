"""Installs prompt-tuning: soft-prompt tuning of frozen T5 1.1 models on JAX/Flax."""
import os

import setuptools

_HERE = os.path.dirname(os.path.abspath(__file__))


with open(os.path.join(_HERE, "README.md"), encoding="utf-8") as f:
  _LONG_DESCRIPTION = f.read()

setuptools.setup(
    name="prompt-tuning",
    version="0.1.0",
    description=("Prompt tuning (Lester et al., 2021) of frozen T5 1.1 models "
                 "in JAX/Flax with optax, orbax and seqio."),
    long_description=_LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The gin configs (prompt_tuning/configs) and the demo model (prompt_tuning/assets)
    # are package data, found through prompt_tuning.paths wherever it is installed.
    packages=setuptools.find_packages(include=["prompt_tuning", "prompt_tuning.*"]),
    package_data={
        "prompt_tuning": ["configs/*/*.gin", "assets/*", "assets/*/*", "assets/*/*/*"],
    },
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "seqio>=0.0.20",
        "tensorflow>=2.19",
        "tensorflow-datasets>=4.9.8",
        "gin-config>=0.5.0",
        "sentencepiece>=0.2.0",
        "tensorstore>=0.1.74",
        "safetensors>=0.5",
        "msgpack>=1.0.7",
        "numpy>=1.26",
        "scikit-learn>=1.3",
        "scipy>=1.11",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "matplotlib>=3.8",
    ],
    extras_require={
        # Accelerators: JAX's own wheels (the CPU install above stays the default).
        "cuda12": ["jax[cuda12]>=0.10"],
        "cuda13": ["jax[cuda13]>=0.10"],
        "tpu": ["jax[tpu]>=0.10"],
        "test": [
            "pytest>=8.0",
            "pytest-xdist>=3.5",
            "torch>=2.6",
            "transformers>=5.0",
            "peft>=0.17",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
        ],
    },
    entry_points={"console_scripts": ["prompt-tuning=prompt_tuning.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
