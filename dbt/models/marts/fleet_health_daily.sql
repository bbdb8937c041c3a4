{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_window('day') }}",
) }}
-- One row per day with data: how many periodic devices (wired, with an expected interval) reported, how
-- many had none, how many sent implausible values, and the fleet's mean uptime and completeness.
with days as (
    select distinct day_start as day from {{ ref('stg_readings_daily') }}
    where day_start >= {{ window_start() }} and day_start < {{ window_end() }}
), periodic as (
    select device_id from {{ ref('stg_devices') }}
    where is_wired and expected_interval_s is not null
), per_device as (
    select day, device_id, sum(readings) as readings, max(uptime_share) as uptime_share,
           avg(completeness) as completeness, bool_or(has_implausible_values) as implausible
    from {{ ref('device_daily_summary') }}
    where day >= {{ window_start() }} and day < {{ window_end() }}
    group by 1, 2
), grid as (
    select d.day, p.device_id, s.readings, s.uptime_share, s.completeness, s.implausible
    from days d
    cross join periodic p
    left join per_device s on s.day = d.day and s.device_id = p.device_id
)
select
    day,
    (day at time zone 'UTC')::date as day_date,
    count(*) as periodic_devices,
    count(*) filter (where readings > 0) as reporting_devices,
    count(*) filter (where readings is null or readings = 0) as devices_without_data,
    count(*) filter (where implausible) as devices_with_implausible_values,
    coalesce(sum(readings), 0) as readings,
    round(avg(coalesce(uptime_share, 0)), 4) as avg_uptime_share,
    round(avg(coalesce(completeness, 0)), 4) as avg_completeness
from grid
group by day
