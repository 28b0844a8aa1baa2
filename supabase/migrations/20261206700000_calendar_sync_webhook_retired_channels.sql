-- Late notifications for channels we have stopped are answered as received, not refused.
--
-- A channel is stopped by a disconnect, a reselected calendar, a renewal that replaced it, or a stop
-- job; the provider may still deliver notifications made before it heard of the stop. They carry the
-- channel's genuine secret. Answering them 404 made Graph retry each one (twice, seconds apart, one
-- message at a time per notification URL), which held up every notification queued behind it, and
-- Graph slows or drops notifications to an endpoint that keeps failing. Such a notification is now
-- `retired`: acknowledged (2xx) and nothing written. An id no channel ever had stays `unknown`, and a
-- wrong secret stays `forged` (4xx, nothing written).

-- Whether a channel that is not notifiable (stopped, failed, a standby replacement, or of a connection
-- that is no longer active) has this provider id and this secret digest.
create or replace function calendar_private.retired_channel_matches(
  p_provider text,
  p_provider_channel_id text,
  p_secret_hash bytea
)
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (
    select 1 from public.calendar_channels ch
    where ch.provider = p_provider and ch.provider_channel_id = p_provider_channel_id
      and calendar_private.digests_equal(ch.secret_hash, p_secret_hash)
  )
$$;

revoke all on function calendar_private.retired_channel_matches(text, text, bytea) from public;

-- One Google push notification (headers X-Goog-*). Returns the outcome:
--   unknown        no channel has this id (nothing written)
--   retired        a channel we stopped, with its genuine token: acknowledged (nothing written)
--   forged         the token's digest or the resource id does not match (nothing written)
--   acknowledged   resource state `sync`: the channel's first message (nothing written)
--   replayed       a message number at or below the highest recorded (nothing written)
--   sync_requested the number recorded, the channel's sync job pending
create or replace function calendar_private.record_google_notification(
  p_channel_id text,
  p_token_hash bytea,
  p_resource_id text,
  p_resource_state text,
  p_message_number bigint
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_channel public.calendar_channels;
begin
  select * into v_channel from calendar_private.notified_channel('google', p_channel_id);
  if v_channel.id is null then
    if calendar_private.retired_channel_matches('google', p_channel_id, p_token_hash) then
      return 'retired';
    end if;
    return 'unknown';
  end if;
  if not calendar_private.digests_equal(v_channel.secret_hash, p_token_hash)
    or (v_channel.resource_id is not null and v_channel.resource_id is distinct from p_resource_id) then
    return 'forged';
  end if;
  if p_resource_state = 'sync' then
    return 'acknowledged';
  end if;
  -- The condition is checked again under the row lock, so of two concurrent messages the older
  -- one never overwrites the newer one's number.
  update public.calendar_channels ch set
    last_message_number = p_message_number,
    last_notified_at = now(),
    sync_requested_at = now()
  where ch.id = v_channel.id
    and (ch.last_message_number is null or ch.last_message_number < p_message_number);
  if not found then
    return 'replayed';
  end if;
  perform calendar_private.request_channel_job(v_channel.id, 'sync');
  return 'sync_requested';
end
$$;

-- A batch of Graph notifications (change or lifecycle), entry i being (p_subscription_ids[i],
-- p_client_state_hashes[i], p_lifecycle_events[i]; null for a change notification). Returns each
-- entry's outcome: unknown, retired (a subscription we stopped, genuine clientState: nothing written),
-- forged (clientState digest differs), accepted. Accepted entries mark their channel notified (and
-- lifecycleEvent's column), and request one sync job per channel for all of them.
create or replace function calendar_private.record_microsoft_notifications(
  p_subscription_ids text[],
  p_client_state_hashes bytea[],
  p_lifecycle_events text[]
)
returns table (ordinal integer, outcome text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_outcomes text[];
  v_channel_ids uuid[];
  v_channel record;
begin
  select
    array_agg(
      case
        when ch.id is null and calendar_private.retired_channel_matches('microsoft', e.subscription_id, e.state_hash)
          then 'retired'
        when ch.id is null then 'unknown'
        when not calendar_private.digests_equal(ch.secret_hash, e.state_hash) then 'forged'
        else 'accepted' end
      order by e.ord),
    array_agg(ch.id order by e.ord)
  into v_outcomes, v_channel_ids
  from unnest(p_subscription_ids, p_client_state_hashes) with ordinality as e(subscription_id, state_hash, ord)
  left join lateral calendar_private.notified_channel('microsoft', e.subscription_id) ch on true;

  for v_channel in
    select v_channel_ids[i] as channel_id, count(*)::integer as requests,
      bool_or(p_lifecycle_events[i] = 'reauthorizationRequired') as reauthorize,
      bool_or(p_lifecycle_events[i] = 'subscriptionRemoved') as removed,
      bool_or(p_lifecycle_events[i] = 'missed') as missed
    from generate_subscripts(v_outcomes, 1) as i
    where v_outcomes[i] = 'accepted'
    group by v_channel_ids[i]
    order by v_channel_ids[i]
  loop
    update public.calendar_channels ch set
      last_notified_at = now(),
      sync_requested_at = now(),
      reauthorization_required_at = case when v_channel.reauthorize then now() else ch.reauthorization_required_at end,
      subscription_removed_at = case when v_channel.removed then now() else ch.subscription_removed_at end,
      missed_at = case when v_channel.missed then now() else ch.missed_at end
    where ch.id = v_channel.channel_id;
    perform calendar_private.request_channel_job(v_channel.channel_id, 'sync', v_channel.requests);
  end loop;

  return query select o.ord::integer, o.outcome from unnest(v_outcomes) with ordinality as o(outcome, ord);
end
$$;
