-- Events as analysts name them. A view: filters on event_at reach the hypertable's chunks. component_type is
-- the component's name without its number (door-sensor, reader, siren, strike, motion-sensor, exit-button,
-- controller).
select
    "time" as event_at,
    controller_mac,
    connector,
    component,
    case when component = 'controller' then 'controller'
         else regexp_replace(component, '-[0-9]+$', '') end as component_type,
    kind,
    controller_id,
    device_id,
    state,
    previous_state,
    previous_duration_s,
    credential_fingerprint,
    credential_key_id,
    credential_length,
    indicator_hex
from {{ source('timeseries', 'device_events') }}
