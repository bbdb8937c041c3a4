{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_window('day') }}",
) }}
-- One row per day (UTC) and reader (controller, connector, reader-N): access attempts (scans), distinct
-- credentials (keyed fingerprints), the first and last attempt, and the reader's registered device where the
-- registry knew it. A run recomputes exactly its window (vars start/end): the window's rows are deleted first.
with access as (
    select * from {{ ref('stg_device_events') }}
    where kind = 'access' and event_at >= {{ window_start() }} and event_at < {{ window_end() }}
), devices as (
    select device_id, device_name from {{ ref('stg_devices') }}
)
select
    md5(time_bucket(interval '1 day', a.event_at)::text || ':' || a.controller_mac || ':' || a.connector || ':'
        || a.component) as access_key,
    time_bucket(interval '1 day', a.event_at) as day,
    (time_bucket(interval '1 day', a.event_at) at time zone 'UTC')::date as day_date,
    a.controller_mac,
    a.connector,
    a.component as reader,
    max(a.device_id) as device_id,
    max(d.device_name) as device_name,
    count(*) as attempts,
    count(distinct a.credential_fingerprint) as distinct_credentials,
    min(a.event_at) as first_attempt_at,
    max(a.event_at) as last_attempt_at
from access a
left join devices d on d.device_id = a.device_id
group by 2, 3, 4, 5, 6
