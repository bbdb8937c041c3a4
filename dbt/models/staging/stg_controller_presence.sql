-- Whether each controller talks: online/offline since when, last seen.
select
    controller_mac,
    controller_id,
    state as presence,
    since as presence_since,
    last_seen,
    silence_after_s
from {{ source('timeseries', 'controller_presence') }}
