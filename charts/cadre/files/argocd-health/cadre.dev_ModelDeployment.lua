-- Argo CD health of a cadre.dev ModelDeployment (mapping and reasons: docs/argocd.md).
-- Argo CD runs custom health scripts with the base and table libraries only (no string
-- library), so this script uses nothing else.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- The condition's sentence, or the fallback when it has none.
local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

-- Reasons a deployment waits (or fails) that waiting alone never ends: the spec, the
-- team's ResourceBudget or the operator config has to change.
local needs_a_change = {
  InvalidSpec = true,
  FlavourRequired = true,
  UnknownFlavour = true,
  UnknownPriority = true,
  PriorityNotAllowed = true,
  NoBudget = true,
  UnknownTeam = true,
  NamespaceConflict = true,
  ExceedsQuota = true,
  ExceedsCapacity = true,
  FlavourNotInQuota = true,
}

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Cadre operator to pick up the deployment"
  return hs
end

local spec = obj.spec or {}
local phase = status.phase
local generation = obj.metadata.generation
local observed = status.observedGeneration
local stopped_as_asked = phase == "Stopped" and spec.stopped == true
if not stopped_as_asked and generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Cadre operator to act on generation " .. generation
    .. " of the spec (the status describes generation " .. observed .. ")"
  return hs
end

local admitted = condition(status, "Admitted")
local ready = condition(status, "Ready")
local rollout = condition(status, "Progressing")
local limited = condition(status, "QuotaLimited")
local model_failed = status.model ~= nil and status.model.state == "FailedToLoad"

local function model_failure()
  if status.model ~= nil and status.model.message ~= nil then
    return status.model.message
  end
  return "a replica fails to load the model"
end

if phase == "Ready" or phase == "QuotaLimited" then
  if model_failed then
    -- Serving from the replicas that loaded, but some fail to (a broken canary model,
    -- a bad node): someone has to look, whatever still serves.
    hs.status = "Degraded"
    hs.message = "Serving, but the model fails to load: " .. model_failure()
  elseif rollout ~= nil and rollout.status == "True" then
    -- As Argo CD's Deployment check: a rollout under way is Progressing.
    hs.status = "Progressing"
    hs.message = "Rolling out: " .. said(rollout, "moving replicas to the spec's layout")
  else
    hs.status = "Healthy"
    hs.message = said(ready, "Ready")
    if phase == "QuotaLimited" then
      -- replicas.min serve: healthy, with fewer replicas than the autoscaler wants.
      hs.message = hs.message .. "; quota-limited: "
        .. said(limited, "more replicas are wanted than the quota admits")
    end
  end
elseif phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = "Degraded: " .. said(ready, "fewer than replicas.min replicas are ready")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. said(admitted, "the spec cannot be served")
elseif phase == "Stopped" then
  hs.status = "Suspended"
  hs.message = "Stopped: " .. said(ready, "spec.stopped is true")
elseif phase == "Loading" then
  hs.status = "Progressing"
  hs.message = "Loading: " .. said(ready, "waiting for replicas.min replicas to be ready")
elseif phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Pending: waiting for the first admission pass"
elseif phase == "Queued" then
  local reason = ""
  if admitted ~= nil and admitted.reason ~= nil then
    reason = admitted.reason
  end
  local why = said(admitted, "waiting for quota")
  if status.queue ~= nil and status.queue.reason ~= nil then
    why = status.queue.reason
  end
  local label = "Queued"
  if status.queue ~= nil and status.queue.position ~= nil then
    label = "Queued (position " .. status.queue.position .. ")"
  elseif status.queue ~= nil and status.queue.positionRange ~= nil then
    -- behind the head of the team's queue its place is a range (11-100, ...)
    label = "Queued (position " .. status.queue.positionRange .. ")"
  end
  if reason == "BudgetExceeded" then
    -- Held until the budget period rolls over or the limit is raised: paused by policy.
    hs.status = "Suspended"
    hs.message = "Held by the team's budget: " .. said(admitted, why)
  elseif needs_a_change[reason] then
    hs.status = "Degraded"
    hs.message = label .. ", cannot be admitted as it is (" .. reason .. "): " .. said(admitted, why)
  else
    hs.status = "Progressing"
    hs.message = label .. ": " .. why
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase) .. " (a newer Cadre than this health check?)"
end
return hs
