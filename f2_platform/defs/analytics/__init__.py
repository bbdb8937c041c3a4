"""Analytics: the dbt project (dbt/, project.py) in the asset graph downstream of the aggregates (assets.py),
built one day at a time after the daily aggregate's checks (schedules.py), by the `dbt` resource (resource.py).
"""
