-- The latest state of each component ("door open since when").
select
    controller_mac,
    connector,
    component,
    controller_id,
    device_id,
    state,
    since as state_since,
    last_event_at
from {{ source('timeseries', 'component_states') }}
