-- Argo CD health check for goreports.io/ReportRequest (resource.customizations.health.goreports.io_ReportRequest).
-- Argo CD runs it with the live object as `obj` and reads hs.status / hs.message.
-- The operator is the single writer of status (operator/status_writer.py, core/status.py):
--   phase Succeeded -> Healthy, Failed -> Degraded, Pending/Running -> Progressing;
--   no status yet (the operator has not accepted the report) or an unknown phase -> Progressing.
-- Plain Lua 5.1: Argo CD's interpreter (gopher-lua) has no goto, no integer division, no os/io.
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

local status = obj.status
if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the go-reports operator to accept the report"
  return hs
end

local phase = status.phase
local ready = condition(status, "Ready")
if phase == "Succeeded" then
  hs.status = "Healthy"
  local msg = (ready ~= nil and text(ready.message)) or text(status.message) or "all steps succeeded"
  if status.rows ~= nil then
    msg = msg .. " (" .. tostring(status.rows) .. " rows)"
  end
  hs.message = msg
elseif phase == "Failed" then
  hs.status = "Degraded"
  local msg = text(status.message) or (ready ~= nil and text(ready.message)) or "the report failed"
  if ready ~= nil and text(ready.reason) ~= nil then
    msg = ready.reason .. ": " .. msg
  end
  hs.message = msg
elseif phase == "Running" or phase == "Pending" then
  hs.status = "Progressing"
  local msg = text(status.message) or string.lower(phase)
  if text(status.currentStep) ~= nil then
    msg = msg .. " (step " .. status.currentStep .. ")"
  end
  hs.message = msg
else
  hs.status = "Progressing"
  hs.message = "Unknown phase " .. tostring(phase) .. "; waiting for the go-reports operator"
end
return hs
