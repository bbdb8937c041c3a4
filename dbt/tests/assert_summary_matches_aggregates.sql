-- The summary's readings per day and series are the daily aggregate's sample counts, for every series
-- of a wired device whose template owns the datapoint.
with summary as (
    select day, device_id, datapoint_id, readings from {{ ref('device_daily_summary') }}
    where day >= {{ window_start() }} and day < {{ window_end() }}
), daily as (
    select a.day_start as day, a.device_id, a.datapoint_id, a.sample_count
    from {{ ref('stg_readings_daily') }} a
    join {{ ref('stg_devices') }} d on d.device_id = a.device_id and d.is_wired
    join {{ ref('stg_datapoints') }} p on p.datapoint_id = a.datapoint_id and p.template_id = d.template_id
    where a.day_start >= {{ window_start() }} and a.day_start < {{ window_end() }}
)
select coalesce(s.day, d.day) as day, coalesce(s.device_id, d.device_id) as device_id,
       coalesce(s.datapoint_id, d.datapoint_id) as datapoint_id, s.readings, d.sample_count
from summary s
full join daily d on d.day = s.day and d.device_id = s.device_id and d.datapoint_id = s.datapoint_id
where s.readings is distinct from d.sample_count
