"""whatif: ranked, quantified "What if...?" reliability scenarios.

A plain Python package (it must import without Airflow): one module per pipeline stage
(ingest, validate, model, simulate, narrate, report, publish) plus config and schemas.
`whatif.pipeline` chains the stages; the Airflow DAG and the CLI both call it.
"""

__version__ = "0.1.0"
