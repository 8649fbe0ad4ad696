-- Argo CD health of a cadre.dev ResourceBudget (mapping and reasons: docs/argocd.md).
-- Argo CD runs custom health scripts with the base and table libraries only (no string
-- library), so this script uses nothing else.
--
-- A budget is Healthy while it is in force as written, over budget or not: budgets
-- sync in a wave before the team's workloads, and anything but Healthy would hold
-- (Progressing, Suspended) or fail (Degraded) every sync of the Application, the very
-- sync that stops a model or raises the limit. What an exceeded budget holds back shows
-- on the workloads it holds: they are Suspended, with the budget's sentence.
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

local function holds(status, kind)
  local c = condition(status, kind)
  return c ~= nil and c.status == "True", c
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Cadre operator to compute the budget's usage and spend"
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Cadre operator to act on generation " .. generation
    .. " of the spec (the status describes generation " .. observed .. ")"
  return hs
end

-- The spec the operator's models refuse (stored under an older CRD): the team gets no
-- quota until it is fixed.
local invalid, invalid_condition = holds(status, "InvalidSpec")
if invalid then
  hs.status = "Degraded"
  hs.message = "Invalid spec, the team gets no quota: " .. (invalid_condition.message or "")
  return hs
end
-- Another budget claims one of its namespaces: new work there waits until one does.
local conflict, conflict_condition = holds(status, "NamespaceConflict")
if conflict then
  hs.status = "Degraded"
  hs.message = conflict_condition.message or "a namespace is claimed by another ResourceBudget"
  return hs
end

local counts = (status.admitted or 0) .. " admitted, " .. (status.queued or 0) .. " queued"
local exceeded, exceeded_condition = holds(status, "BudgetExceeded")
local warned, warning_condition = holds(status, "BudgetWarning")
local spend = ""
if exceeded then
  spend = "; " .. (exceeded_condition.message or "budget exceeded")
elseif warned then
  spend = "; " .. (warning_condition.message or "a warnAt threshold is reached")
elseif exceeded_condition ~= nil and exceeded_condition.message ~= nil then
  spend = "; " .. exceeded_condition.message
end
hs.status = "Healthy"
hs.message = counts .. spend
return hs
