{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_window('day') }}",
) }}
-- One row per day, wired device and datapoint of its template: readings, min/max/avg in the datapoint's
-- unit, the share of the day's hours with data (uptime) and the share of the expected readings present.
-- A run recomputes exactly its window (vars start/end): the window's rows are deleted first.
with daily as (
    select * from {{ ref('stg_readings_daily') }}
    where day_start >= {{ window_start() }} and day_start < {{ window_end() }}
), hours as (
    select time_bucket(interval '1 day', hour_start) as day_start, device_id, datapoint_id,
           count(*) as hours_with_data
    from {{ ref('stg_readings_hourly') }}
    where hour_start >= {{ window_start() }} and hour_start < {{ window_end() }}
    group by 1, 2, 3
), devices as (
    select * from {{ ref('stg_devices') }} where is_wired
), datapoints as (
    select * from {{ ref('stg_datapoints') }}
)
select
    md5(d.day_start::text || ':' || d.device_id || ':' || d.datapoint_id) as summary_key,
    d.day_start as day,
    (d.day_start at time zone 'UTC')::date as day_date,
    d.device_id,
    dev.device_name,
    dev.template_name,
    dev.controller_mac,
    d.datapoint_id,
    p.label as datapoint_label,
    p.unit,
    d.sample_count as readings,
    d.min_value,
    d.max_value,
    d.avg_value,
    d.stddev_value,
    d.first_value,
    d.last_value,
    coalesce(h.hours_with_data, 0) as hours_with_data,
    round(coalesce(h.hours_with_data, 0) / 24.0, 4) as uptime_share,
    case when dev.expected_interval_s is not null then 86400 / dev.expected_interval_s end as expected_readings,
    case when dev.expected_interval_s is not null
         then round(least(1.0, d.sample_count::numeric / (86400 / dev.expected_interval_s)), 4) end as completeness,
    p.plausible_min,
    p.plausible_max,
    coalesce(d.min_value < p.plausible_min, false) or coalesce(d.max_value > p.plausible_max, false)
        as has_implausible_values
from daily d
join devices dev on dev.device_id = d.device_id
join datapoints p on p.datapoint_id = d.datapoint_id and p.template_id = dev.template_id
left join hours h on h.day_start = d.day_start and h.device_id = d.device_id and h.datapoint_id = d.datapoint_id
