-- Argo CD health check for goreports.io/ReportSchedule (resource.customizations.health.goreports.io_ReportSchedule).
-- Argo CD runs it with the live object as `obj` and reads hs.status / hs.message.
-- Written by the operator (operator/schedules.py, schedule_logic.fold_status): conditions Ready
-- (False with InvalidSchedule, InvalidTimeZone or CreateFailed) and Suspended, observedGeneration.
--   spec.suspend true (or condition Suspended=True) -> Suspended
--   Ready=False                                      -> Degraded
--   Ready=True, status of the current generation     -> Healthy
--   no status yet, an older generation, Ready absent -> Progressing
-- A schedule's health is its own, like a CronJob's: a failed run is Degraded on that
-- ReportRequest, not on the schedule. Plain Lua 5.1 (Argo CD's gopher-lua).
local hs = {}

local function condition(status, ctype)
  if status == nil or type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(value)
  if value == nil or value == "" then
    return nil
  end
  return tostring(value)
end

local spec = obj.spec or {}
local status = obj.status
local suspended = condition(status, "Suspended")
if spec.suspend == true or (suspended ~= nil and suspended.status == "True" and spec.suspend == nil) then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no new runs are created"
  if status ~= nil and status.activeCount ~= nil and status.activeCount > 0 then
    hs.message = hs.message .. " (" .. tostring(status.activeCount) .. " run(s) still active)"
  end
  return hs
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the go-reports operator to reconcile the schedule"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the go-reports operator to reconcile generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the go-reports operator to reconcile the schedule"
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (text(ready.reason) or "NotReady") .. ": " .. (text(ready.message) or "the schedule cannot create runs")
elseif ready.status == "True" then
  hs.status = "Healthy"
  local msg = text(ready.message) or "scheduling"
  if status.activeCount ~= nil and status.activeCount > 0 then
    msg = msg .. "; " .. tostring(status.activeCount) .. " run(s) active"
  end
  hs.message = msg
else
  hs.status = "Progressing"
  hs.message = text(ready.message) or "Waiting for the go-reports operator"
end
return hs
