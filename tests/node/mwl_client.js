// An independent DICOM client (dcmjs-dimse) for Junction's dicom_mwl source:
// one association with an MWL C-FIND, an MPPS N-CREATE (IN PROGRESS) and an
// N-SET (COMPLETED, or FINAL_STATUS). Prints what it saw as one JSON object on stdout.
// usage: node mwl_client.js HOST PORT CALLED_AE CALLING_AE PATIENT_ID ACCESSION STUDY_UID
// env: STEPS=find,create,set (the default: all three), MPPS_UID (default: a new one),
//      FINAL_STATUS (the N-SET status, default COMPLETED), LINGER_MS
'use strict';
const dimse = require('dcmjs-dimse');
const { Client, Dataset } = dimse;
const { CFindRequest, NCreateRequest, NSetRequest } = dimse.requests;
const { SopClass, Status } = dimse.constants;

const [host, port, calledAe, callingAe, patientId, accession, studyUid] = process.argv.slice(2);
if (!studyUid) {
  console.error('usage: node mwl_client.js HOST PORT CALLED_AE CALLING_AE PATIENT_ID ACCESSION STUDY_UID');
  process.exit(2);
}
const mppsUid = process.env.MPPS_UID || `1.2.826.0.1.3680043.10.1010.${process.pid}.${Date.now()}`;
const steps = (process.env.STEPS || 'find,create,set').split(',');
const result = { mppsUid, matches: [], findStatus: null, createStatus: null, setStatus: null, errors: [] };

const find = CFindRequest.createWorklistFindRequest({ PatientID: patientId });
find.on('response', (r) => {
  if (r.getStatus() === Status.Pending && r.hasDataset()) {
    const e = r.getDataset().getElements();
    const sps = (e.ScheduledProcedureStepSequence || [])[0] || {};
    result.matches.push({
      PatientID: e.PatientID,
      AccessionNumber: e.AccessionNumber,
      PatientName: e.PatientName,
      Modality: sps.Modality,
      ScheduledStationAETitle: sps.ScheduledStationAETitle,
    });
  } else {
    result.findStatus = r.getStatus();
  }
});

const create = new NCreateRequest(SopClass.ModalityPerformedProcedureStep, mppsUid);
create.setDataset(new Dataset({
  PerformedProcedureStepStatus: 'IN PROGRESS',
  PerformedProcedureStepID: 'PPS1',
  PerformedStationAETitle: callingAe,
  PerformedProcedureStepStartDate: '20260101',
  PerformedProcedureStepStartTime: '101500',
  Modality: 'CT',
  PatientID: patientId,
  ScheduledStepAttributesSequence: [{ AccessionNumber: accession, StudyInstanceUID: studyUid }],
}));
create.on('response', (r) => { result.createStatus = r.getStatus(); });

const set = new NSetRequest(SopClass.ModalityPerformedProcedureStep, mppsUid);
set.setDataset(new Dataset({
  PerformedProcedureStepStatus: process.env.FINAL_STATUS || 'COMPLETED',
  PerformedProcedureStepEndDate: '20260101',
  PerformedProcedureStepEndTime: '103000',
}));
set.on('response', (r) => { result.setStatus = r.getStatus(); });

const client = new Client();
if (steps.includes('find')) client.addRequest(find);
if (steps.includes('create')) client.addRequest(create);
if (steps.includes('set')) client.addRequest(set);
const timer = setTimeout(() => { result.errors.push('timeout'); finish(); }, 20000 + Number(process.env.LINGER_MS || 0));
let done = false;
function finish() {
  if (done) return;
  done = true;
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}
client.on('associationRejected', (r) => { result.errors.push(`association rejected: ${JSON.stringify(r)}`); });
client.on('networkError', (e) => { result.errors.push(`network error: ${e.message}`); finish(); });
client.on('closed', finish);
// LINGER_MS keeps the association open that long after the last response.
client.send(host, Number(port), callingAe, calledAe, { associationLingerTimeout: Number(process.env.LINGER_MS || 0) });
