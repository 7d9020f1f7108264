/* The page's parts talk through named events, so none imports another's internals and a
 * new control subscribes to what it needs. Events:
 *   lang           the language changed (every part redraws its words)
 *   auth           the sign-in changed (parts reload what they show)
 *   unauthorized   an API call was answered 401
 *   range          the form's range changed            {start, end}
 *   server-info    the API told its today and limit    {today, maxDays}
 *   watch          watch a job's progress              {taskId, conflict, started, focus}
 *   job-progress   a watched job moved on              {progress}
 *   job-ended      a watched job ended                 {progress}
 *   jobs-changed   jobs were started or ended (the history reloads)
 *   use-date       a date was chosen for the form      {field: 'start'|'end', date}
 *   live-watch     ask for pushed progress of a job    {taskId}
 *   live-unwatch   no more pushes wanted
 *   live-progress  a pushed progress arrived           {taskId, progress}
 *   live-state     pushes started or stopped arriving  {taskId, up}
 */

const target = new EventTarget();

export function on(name, handler) {
  target.addEventListener(name, (event) => handler(event.detail || {}));
}

export function emit(name, detail) {
  target.dispatchEvent(new CustomEvent(name, { detail }));
}
