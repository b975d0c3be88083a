from pathlib import Path

from setuptools import setup

setup(
    name="notify-engine",
    version="0.4.0",
    description="Real-time personalised notifications for e-commerce, as a PyFlink job",
    long_description=Path(__file__).with_name("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",
    packages=["config", "jobs", "operators", "state_schemas", "notify_engine"],
    package_data={"notify_engine": ["resources/*"], "config": ["templates.yaml"]},
    install_requires=[
        # The Kafka connector on Maven Central (5.0.0-2.2) is built for Flink 2.2.
        "apache-flink==2.2.1",
        # Kafka 4.x brokers dropped old protocol versions; 3.0 speaks the new ones.
        "kafka-python>=3.0.12,<4",
        "numpy>=1.26,<2.2",  # apache-beam (a PyFlink dependency) pins numpy<2.2
        "redis>=5,<6",  # apache-beam pins redis<6
        "pyyaml>=6",
        # Several times faster than json for the free-form JSON left (dead letters, served profiles).
        "orjson>=3.9",
        # Every record's schema, validated and encoded in C: faster than the hand-written codec it replaced
        # (bench/codec.py) at a fraction of its code; well kept, wheels for 3.11.
        "msgspec>=0.19,<1",
        # IANA zones for users' local time (quiet hours, daily caps) on machines without system zone files.
        "tzdata>=2024.1",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100"],
        # implicit: the batch ALS reference of `make eval` (well kept, wheels for 3.11, C++ inner loops).
        # jieba: only to measure word segmentation against the job's character bigrams (bench/chinese_terms.py).
        # py-spy: samples the mini-cluster JVM's embedded Python for bench/profile_job.py (a static binary wheel).
        "bench": ["tqdm>=4.66", "matplotlib>=3.8", "implicit>=0.7.2,<0.8", "jieba>=0.42.1,<0.43", "py-spy>=0.4,<0.5"],
        # `notify-engine report`: its progress bar and its plot.
        "report": ["tqdm>=4.66", "matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["notify-engine=notify_engine.cli:main"]},
)
