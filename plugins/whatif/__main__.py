"""`python -m whatif` runs the CLI."""

if __name__ == "__main__":  # Airflow's plugin loader imports every module: do nothing then
    from whatif.cli import main

    raise SystemExit(main())
