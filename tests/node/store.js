// C-ECHO and C-STORE with dcmjs-dimse, an independent DICOM implementation:
//   node store.js HOST PORT CALLED_AE CALLING_AE FILE...
// Prints one JSON line {"echo": status, "stored": {file: status}, "error": ...}
// and exits 0 when every request succeeded.
const dcmjsDimse = require('dcmjs-dimse');
const { Client } = dcmjsDimse;
const { CEchoRequest, CStoreRequest } = dcmjsDimse.requests;
const { Status } = dcmjsDimse.constants;

const [host, port, calledAe, callingAe, ...files] = process.argv.slice(2);
const result = { echo: null, stored: {}, error: null };

const client = new Client();
const echo = new CEchoRequest();
echo.on('response', (response) => { result.echo = response.getStatus(); });
client.addRequest(echo);
for (const file of files) {
  const request = new CStoreRequest(file);
  request.on('response', (response) => { result.stored[file] = response.getStatus(); });
  client.addRequest(request);
}
client.on('associationRejected', (reject) => { result.error = `association rejected: ${JSON.stringify(reject)}`; });
client.on('networkError', (e) => { result.error = `network error: ${e.message || e}`; });
client.on('closed', () => {
  console.log(JSON.stringify(result));
  const ok = !result.error && result.echo === Status.Success &&
    files.every((f) => result.stored[f] === Status.Success);
  process.exit(ok ? 0 : 1);
});
client.send(host, Number(port), callingAe, calledAe);
