-- A component's longest active run is part of its active time, and never negative.
select day, controller_mac, connector, component, active_s, longest_active_s
from {{ ref('alarms_daily') }}
where longest_active_s > active_s + 1e-6 or longest_active_s < 0
