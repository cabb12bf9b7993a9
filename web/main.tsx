/** The console's entry: a reloaded tab's session check and Watch go out first, then the app renders into #root (index.html, built by scripts/build-web.ts). */
import { createRoot } from "react-dom/client";
import { App } from "./app.js";
import { restoreSession } from "./restore.js";
import "./styles.css";

// When the bundle has been fetched, parsed and run up to here (read by test/web/console-load.ts).
performance.mark("metal:script-run");
const restoring = restoreSession();
createRoot(document.getElementById("root")!).render(<App restoring={restoring} />);
