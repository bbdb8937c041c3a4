-- Every access attempt of a reader's day is one credential's: the attempts by fingerprint add up to the
-- reader's (access events without a fingerprint would break it: the bridge always gives one).
with by_credential as (
    select day, controller_mac, connector, reader, sum(attempts) as attempts,
           count(*) as credentials
    from {{ ref('access_credentials_daily') }}
    group by 1, 2, 3, 4
)
select a.day, a.controller_mac, a.connector, a.reader, a.attempts, c.attempts as by_credential,
       a.distinct_credentials, c.credentials
from {{ ref('access_daily') }} a
left join by_credential c using (day, controller_mac, connector, reader)
where c.attempts is distinct from a.attempts or c.credentials is distinct from a.distinct_credentials
