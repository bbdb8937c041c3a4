{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_window('day') }}",
) }}
-- One row per day (UTC) and alarm or door component (siren-N, strike-N, motion-sensor-N, exit-button-N,
-- door-sensor-K): activations (changes to its active state: powered, detected, pressed, open) and how long it
-- stayed active, from the events that ended an active run that day (previous_duration_s of the change away
-- from the active state; a run still active at the day's end counts on the day it ends).
with events as (
    select *,
           case component_type
               when 'door-sensor' then 'open'
               when 'motion-sensor' then 'detected'
               when 'exit-button' then 'pressed'
               else 'powered'
           end as active_state
    from {{ ref('stg_device_events') }}
    where kind = 'state'
      and component_type in ('door-sensor', 'siren', 'strike', 'motion-sensor', 'exit-button')
      and event_at >= {{ window_start() }} and event_at < {{ window_end() }}
)
select
    md5(time_bucket(interval '1 day', event_at)::text || ':' || controller_mac || ':' || connector || ':'
        || component) as alarm_key,
    time_bucket(interval '1 day', event_at) as day,
    (time_bucket(interval '1 day', event_at) at time zone 'UTC')::date as day_date,
    controller_mac,
    connector,
    component,
    component_type,
    max(device_id) as device_id,
    count(*) as events,
    count(*) filter (where state = active_state and previous_state is distinct from active_state) as activations,
    count(*) filter (where previous_state = active_state and state <> active_state) as runs_ended,
    coalesce(sum(previous_duration_s) filter (where previous_state = active_state and state <> active_state), 0)
        as active_s,
    coalesce(max(previous_duration_s) filter (where previous_state = active_state and state <> active_state), 0)
        as longest_active_s
from events
group by 2, 3, 4, 5, 6, 7
