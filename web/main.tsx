/** The console's entry: renders the app into #root (index.html, built by scripts/build-web.ts). */
import { createRoot } from "react-dom/client";
import { App } from "./app.js";
import "./styles.css";

createRoot(document.getElementById("root")!).render(<App />);
