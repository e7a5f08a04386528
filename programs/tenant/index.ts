import { tenantProgram } from "./program";

export default tenantProgram;
