select
    bucket as day_start,
    device_id,
    datapoint_id,
    sample_count,
    avg_value,
    min_value,
    max_value,
    first_value,
    last_value,
    stddev_value
from {{ source('timeseries', 'readings_daily') }}
