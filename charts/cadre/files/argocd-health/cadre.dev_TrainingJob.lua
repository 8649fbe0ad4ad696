-- Argo CD health of a cadre.dev TrainingJob (mapping and reasons: docs/argocd.md).
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

-- Reasons a job waits that waiting alone never ends: the spec, the team's
-- ResourceBudget or the operator config has to change.
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
  hs.message = "Waiting for the Cadre operator to queue the job"
  return hs
end

local spec = obj.spec or {}
local phase = status.phase
local generation = obj.metadata.generation
local observed = status.observedGeneration
-- A finished job is never run again, and a suspended one is not looked at until it is
-- resumed: the operator does not rewrite their status for a new spec, so an older
-- observedGeneration is no sign of work to come there.
local settled = phase == "Succeeded" or phase == "Failed"
  or (phase == "Suspended" and spec.suspend == true)
if not settled and generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Cadre operator to act on generation " .. generation
    .. " of the spec (the status describes generation " .. observed .. ")"
  return hs
end

local workers = spec.workers or 1
local admitted = condition(status, "Admitted")
local running = condition(status, "Running")
local finished = condition(status, "Finished")

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Succeeded: " .. said(finished, "all workers succeeded")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. said(finished, "the job failed")
elseif phase == "Running" then
  -- Healthy, not Progressing: the job does what its spec asks, and a sync wave (or
  -- the Application's health) must not wait on a run that can last for days.
  hs.status = "Healthy"
  hs.message = "Running: " .. said(running, "all " .. workers .. " worker(s) are running")
elseif phase == "Admitted" then
  local ready = 0
  if status.workers ~= nil and status.workers.ready ~= nil then
    ready = status.workers.ready
  end
  hs.status = "Progressing"
  hs.message = "Admitted, starting: " .. ready .. " of " .. workers .. " worker(s) ready"
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "Suspended: " .. said(admitted, "spec.suspend is true")
elseif phase == "Queued" or phase == "Preempted" then
  local reason = ""
  if admitted ~= nil and admitted.reason ~= nil then
    reason = admitted.reason
  end
  local waiting = nil
  if status.queue ~= nil then
    waiting = status.queue.reason
  end
  local why = waiting or said(admitted, "waiting to be admitted")
  local label = phase
  if phase == "Queued" and status.queue ~= nil and status.queue.position ~= nil then
    label = "Queued (position " .. status.queue.position .. ")"
  elseif phase == "Queued" and status.queue ~= nil and status.queue.positionRange ~= nil then
    -- behind the head of the team's queue its place is a range (11-100, ...)
    label = "Queued (position " .. status.queue.positionRange .. ")"
  end
  if reason == "BudgetExceeded" then
    -- Held until the budget period rolls over or the limit is raised: paused by policy,
    -- not broken, and not progressing on its own either.
    hs.status = "Suspended"
    hs.message = "Held by the team's budget: " .. said(admitted, why)
  elseif needs_a_change[reason] then
    hs.status = "Degraded"
    hs.message = label .. ", cannot be admitted as it is (" .. reason .. "): " .. said(admitted, why)
  elseif phase == "Preempted" then
    hs.status = "Progressing"
    hs.message = "Preempted, waiting to be admitted again: " .. why
  else
    hs.status = "Progressing"
    hs.message = label .. ": " .. why
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase) .. " (a newer Cadre than this health check?)"
end
return hs
