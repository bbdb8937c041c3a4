select
    datapointid as datapoint_id,
    devicetemplateid as template_id,
    label,
    dataencoding as encoding,
    decimals,
    nullif(btrim(coalesce(append, '')), '') as unit,
    min_value as plausible_min,
    max_value as plausible_max
from {{ source('registry', 'datapoints') }}
