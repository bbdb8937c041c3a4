{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_window('day') }}",
) }}
-- One row per day (UTC), reader and credential fingerprint: how often that credential was scanned there.
-- The fingerprint is the bridge's keyed HMAC (credential_key_id names the key); `f2 credentials fingerprint`
-- gives a known card's.
select
    md5(time_bucket(interval '1 day', event_at)::text || ':' || controller_mac || ':' || connector || ':'
        || component || ':' || credential_fingerprint) as credential_key,
    time_bucket(interval '1 day', event_at) as day,
    (time_bucket(interval '1 day', event_at) at time zone 'UTC')::date as day_date,
    controller_mac,
    connector,
    component as reader,
    credential_fingerprint,
    max(credential_key_id) as credential_key_id,
    count(*) as attempts,
    min(event_at) as first_attempt_at,
    max(event_at) as last_attempt_at
from {{ ref('stg_device_events') }}
where kind = 'access' and credential_fingerprint is not null
  and event_at >= {{ window_start() }} and event_at < {{ window_end() }}
group by 2, 3, 4, 5, 6, 7
