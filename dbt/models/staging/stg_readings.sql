-- Readings as analysts name them. A view: filters on reading_at reach the hypertable's chunks.
select
    "timestamp" as reading_at,
    device_id,
    datapoint_id,
    value
from {{ source('timeseries', 'decoded_data') }}
