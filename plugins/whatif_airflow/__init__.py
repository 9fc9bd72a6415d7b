"""The Airflow side of whatif: everything the DAG files need that is not the engine.

- `connections`: Airflow connections mapped declaratively to the engine's settings (the LLM,
  the Confluence page, the reports' object storage, the SQL source).
- `storage`: where a run's stages exchange files (the work location), as a local folder.
- `tasks`: what every task does around its engine stage: the run's settings from the params
  and the context, the inputs, user errors failing without retries.
- `alerts`: the chat-webhook notifier of failed and overrunning runs.
- `assets`: the Asset the publish task updates, and what every what-if DAG shares (defaults,
  the trigger form's params).

It lives in plugins/ (on sys.path for every Airflow component, dags/ is not) beside the engine
(plugins/whatif), which never imports it. Modules here import only Airflow's authoring API and
whatif.params at top level, so that parsing a DAG file stays fast.
"""
